"""core.sealing: a PAN carried by a page as a reference opens only under its own key, unchanged."""

from __future__ import annotations

import pytest

from sscard.core.errors import SscardError
from sscard.core.sealing import open_sealed, seal

KEY = bytes(range(32))
PAN = "6222020000000000018"


def test_a_sealed_pan_opens_to_itself_and_does_not_show_it():
    ref = seal(KEY, PAN)
    assert PAN not in ref and open_sealed(KEY, ref) == PAN


def test_two_seals_of_one_pan_differ():
    assert seal(KEY, PAN) != seal(KEY, PAN)


@pytest.mark.parametrize("spoil", [
    lambda ref: ref[:-3] + ("AAA" if not ref.endswith("AAA") else "BBB"),  # tag changed
    lambda ref: ref[:4] + ("A" if ref[4] != "A" else "B") + ref[5:],  # body changed
    lambda ref: ref[:10],  # cut short
    lambda ref: "!!not base64!!",
])
def test_a_changed_or_cut_reference_is_an_invalid_request(spoil):
    with pytest.raises(SscardError) as err:
        open_sealed(KEY, spoil(seal(KEY, PAN)))
    assert err.value.code == "invalid_request"


def test_a_reference_from_another_key_is_an_invalid_request():
    with pytest.raises(SscardError) as err:
        open_sealed(bytes(32), seal(KEY, PAN))
    assert err.value.code == "invalid_request"
