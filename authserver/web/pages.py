"""The plumbing every hosted page shares: the blueprint, its headers and language,
rendering a page, reading a page's query or form (media type, each field once, the CSRF
token, then the fields' rules), showing a form again with its problems, and turning a
decision about a waiting authorization request into an HTTP answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlencode

import phonenumbers
from flask import (
    Blueprint,
    Response,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext
from flask_wtf.csrf import CSRFError, generate_csrf
from markupsafe import Markup
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from pydantic import BaseModel, ValidationError

from authserver.authorize.flow import ErrorPage, NeedSignIn, Outcome, PendingAuthorization, ToClient
from authserver.context import settings
from authserver.errors import FormProblem, InvalidTicket, MalformedInput
from authserver.extensions import db
from authserver.openapi import Reply, documented
from authserver.web.forms import (
    PageQuery,
)
from authserver.web.i18n import page_language, remember_choice
from authserver.web.security import allow_form_target, csrf, page_headers

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/web/static",
)
Model = TypeVar("Model", bound=BaseModel)

MAX_QUERY = 8192
# Session-cookie keys of the code pages: the number a code went to, and a sign-up's names.
CODE_PHONE, RESET_PHONE, SIGNUP_NAMES = "code_phone", "reset_phone", "signup"

# --- documentation of the pages' answers ----------------------------------------------
PAGE = Reply(str, "An HTML page.", media_type="text/html")
REDIRECT = Reply(description="To the next page, or back to the app with a code or an error.")


def _page_replies(*statuses: int) -> dict[int, Reply]:
    text = {
        400: "The page again, the problems named (a form that does not fit, a missing or "
        "stale CSRF token, an expired ticket).",
        403: "The page again: this account is disabled.",
        415: "The page again: the form was not sent as a form.",
        429: "The page again: too many attempts or codes; try later.",
        503: "The page again: the SMS gateway or the rate-limit storage is unavailable.",
    }
    return {status: Reply(str, text[status], media_type="text/html") for status in statuses}


def page_route(rule: str, summary: str, *, form: type[BaseModel] | None = None, **options):
    """A page: GET shows it (``PageQuery``), POST (when ``form``) takes its form."""

    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        if form is None:
            documented(
                summary,
                tags=["pages"],
                query=PageQuery,
                responses={200: PAGE, 302: REDIRECT, **_page_replies(400)},
                security=["browser", "none"],
                **options,
            )(view)
            return bp.get(rule)(view)
        documented(
            summary,
            tags=["pages"],
            form=form,
            responses={
                303: REDIRECT,
                **_page_replies(400, 403, 415, 429, 503),
            },
            security=["browser", "none"],
            **options,
        )(view)
        return bp.post(rule)(view)

    return register


@bp.before_request
def _language() -> None:
    remember_choice()


@bp.after_request
def _headers(response: Response) -> Response:
    return page_headers(response)


@bp.context_processor
def _layout() -> dict[str, Any]:
    return {
        **page_language(),
        "csrf_token": generate_csrf,
        "ltr": left_to_right,
        "language_query": language_query,
        "phone_example": phone_example(settings().default_region),
    }


def left_to_right(text: str) -> Markup:
    """A phone number (or code) inside a sentence of either direction."""
    return Markup('<bdi dir="ltr">{}</bdi>').format(text)


def language_query(language: str, ticket: str | None) -> str:
    """The query of this page in another language (its waiting request kept)."""
    args = {name: value for name, value in request.args.items() if name != "lang"}
    if ticket:
        args["ticket"] = ticket
    return urlencode({**args, "lang": language})


@dataclass(frozen=True)
class PhoneExample:
    national: str
    international: str


@cache
def phone_example(region: str) -> PhoneExample:
    """A mobile number of the server's default region, written both ways (the hints)."""
    number = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    if number is None:
        return PhoneExample("", "")
    return PhoneExample(
        phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL).replace(" ", ""),
        phonenumbers.format_number(number, PhoneNumberFormat.E164),
    )


# --- answering ------------------------------------------------------------------------
def render_page(template: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("errors", {})
    context.setdefault("summary", None)
    context.setdefault("values", {})
    context["notices"] = get_flashed_messages()
    pending: PendingAuthorization | None = context.get("pending")
    if pending is not None:
        context.setdefault("ticket", pending.ticket())
        allow_form_target(_redirect_target(pending))
    html = render_template(f"web/{template}", **context)
    return Response(html, status=status, mimetype="text/html")


def _redirect_target(pending: PendingAuthorization) -> str | None:
    uri = pending.params.get("redirect_uri")
    if uri:
        return uri
    client = pending.client()
    return client.get_default_redirect_uri() if client else None


def error_page(error: str, description: str = "", status: int = 400) -> Response:
    messages = {
        "invalid_client": _("This app is not known here."),
        "invalid_request": _("The app sent a request that cannot be used."),
        "expired_ticket": _("This page has expired. Go back to the app and start again."),
        "invalid_ticket": _("This link is damaged. Go back to the app and start again."),
        "csrf": _("This page has expired. Open it again and retry."),
        "unsupported_media_type": _("The form was not sent as a form."),
    }
    return render_page(
        "error.html",
        status,
        message=messages.get(error, _("The app sent a request that cannot be used.")),
        error=error,
        description=description,
    )


def respond(outcome: Outcome, *, after_form: bool = False) -> Response:
    """The HTTP answer to a decision about a waiting authorization request."""
    if isinstance(outcome, ToClient):
        # A 303 after a form: the browser follows it with a GET, never a repost.
        response = Response(status=303 if after_form else 302)
        response.headers["Location"] = outcome.location
        allow_form_target(outcome.location)
        return response
    if isinstance(outcome, ErrorPage):
        return error_page(outcome.error, outcome.description)
    endpoint = "web.sign_in" if isinstance(outcome, NeedSignIn) else "web.consent"
    return redirect(url_for(endpoint, ticket=outcome.pending.ticket()), 303 if after_form else 302)


def pending_from(value: str | None) -> PendingAuthorization | None:
    if not value:
        return None
    pending = PendingAuthorization.from_ticket(value)
    g.ui_locales = pending.ui_locales
    return pending


def page_query() -> PageQuery:
    if len(request.query_string) > MAX_QUERY:
        raise FormProblem(400, {}, _("The address is too long."))
    if any(len(values) > 1 for values in request.args.listvalues()):
        raise FormProblem(400, {}, _("The address repeats a parameter."))
    try:
        return PageQuery.model_validate(request.args.to_dict())
    except ValidationError:
        raise FormProblem(400, {}, _("The address holds something unexpected.")) from None


def read_form(model: type[Model]) -> Model:
    """The posted form as ``model``, its CSRF token checked; or raise FormProblem."""
    if request.mimetype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise FormProblem(415, {}, _("The form was not sent as a form."))
    if request.args:
        raise FormProblem(400, {}, _("The address holds something unexpected."))
    if any(len(values) > 1 for values in request.form.listvalues()):
        raise FormProblem(400, {}, _("The form repeats a field."))
    csrf.protect()  # CSRFError: handled below
    try:
        return model.model_validate(request.form.to_dict())
    except ValidationError as error:
        raise FormProblem(400, _field_messages(error)) from None


FIELD_MESSAGES = {
    "missing": lazy_gettext("This field is required."),
    "string_too_short": lazy_gettext("This is too short."),
    "string_too_long": lazy_gettext("This is too long."),
    "literal_error": lazy_gettext("Choose one of the options."),
    "extra_forbidden": lazy_gettext("This field is not expected here."),
}


def _field_messages(error: ValidationError) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in error.errors():
        name = str(item["loc"][0]) if item["loc"] else "form"
        if name == "password" and item["type"] == "string_too_short":
            message = str(lazy_gettext("Enter your password."))
        elif name == "new_password" and item["type"] == "string_too_short":
            message = _("Use at least 8 characters.")
        else:
            message = str(
                FIELD_MESSAGES.get(
                    item["type"], lazy_gettext("This contains characters that are not allowed.")
                )
            )
        fields.setdefault(name, message)
    return fields


# The page each form comes from, shown again when the form cannot be used.
FORM_PAGES = {
    "web.sign_in_submit": "sign_in.html",
    "web.code_request_submit": "code_request.html",
    "web.code_verify_submit": "code_verify.html",
    "web.sign_up_submit": "sign_up.html",
    "web.reset_request_submit": "reset_request.html",
    "web.reset_verify_submit": "reset_verify.html",
}
# What a page may show again of what was typed (never a password or a code).
KEPT_VALUES = ("phone", "first_name", "last_name")


@bp.errorhandler(FormProblem)
def _form_problem(problem: FormProblem) -> Response:
    db.session.rollback()
    template = FORM_PAGES.get(request.endpoint or "")
    summary = problem.summary or _("Check the form: some fields need your attention.")
    if template is None:
        return error_page("invalid_request", summary, problem.status)
    try:
        pending = pending_from(request.form.get("ticket"))
    except InvalidTicket:
        pending = None
    values = {
        name: value
        for name in KEPT_VALUES
        if (value := request.form.get(name, "")) and len(value) <= 150 and value.isprintable()
    }
    phone = session.get(RESET_PHONE if "reset" in template else CODE_PHONE)
    return render_page(
        template,
        problem.status,
        pending=pending,
        values=values,
        errors=problem.fields,
        summary=summary,
        phone=phone,
    )


@bp.errorhandler(MalformedInput)
def _malformed(error: MalformedInput) -> Response:
    return _form_problem(FormProblem(400, {error.field: error.description}))


@bp.errorhandler(InvalidTicket)
def _bad_ticket(error: InvalidTicket) -> Response:
    return error_page("expired_ticket" if error.expired else "invalid_ticket")


@bp.errorhandler(CSRFError)
def _csrf_failed(error: CSRFError) -> Response:
    db.session.rollback()
    return error_page("csrf", error.description)
