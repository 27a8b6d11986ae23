"""Identifiers never reach the logs in clear, whoever logs them (uvicorn's access log included)."""

import logging

from sscard.logs import MaskingFilter, install_masking


def test_masking_filter_masks_citizen_ids_pans_and_card_numbers_in_any_log_record(caplog):
    install_masking()
    logger = logging.getLogger("sscard.test")
    caplog.handler.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO, logger="sscard.test"):
        logger.info("GET /api/v1/cards/%s for %s pan %s", "E5801743X", "11010519491231002X", "6228232483676285132")
    text = caplog.text
    assert "11010519491231002X" not in text and "110105********002X" in text
    assert "6228232483676285132" not in text and "622823*********5132" in text
    assert "E5801743X" not in text and "E5*****3X" in text
