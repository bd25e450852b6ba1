"""Phone numbers: every number is stored and compared in E.164."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

from authserver.errors import InvalidPhoneNumber


def normalize_phone(text: str, default_region: str, *, mobile_only: bool = False) -> str:
    if not isinstance(text, str) or not text.strip() or len(text) > 32:
        raise InvalidPhoneNumber("not a phone number")
    try:
        number = phonenumbers.parse(text, default_region.upper())
    except NumberParseException:
        raise InvalidPhoneNumber("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber("not a valid phone number")
    if mobile_only and phonenumbers.number_type(number) not in (
        PhoneNumberType.MOBILE,
        PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise InvalidPhoneNumber("not a mobile phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
