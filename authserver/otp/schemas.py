"""Answers of the one-time-code endpoints, described for the OpenAPI document; the
account API's ``POST /account/code`` and ``POST /account/phone`` answer the same shape."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CodeSentReply(BaseModel):
    """A code went out by SMS."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(description="The number, in E.164.")
    expires_in: int = Field(description="Seconds the code stays valid.")
    retry_after: int = Field(description="Seconds before this phone may ask again.")
    code: str | None = Field(None, description="Only with AUTHSERVER_OTP_EXPOSE_CODE.")
