"""The authorization endpoint, the logout endpoint and the hosted pages.

Views translate HTTP: services decide (authorize/flow.py, accounts, otp) and the view
commits once at the end. A form is read in this order: media type, each field once, the
CSRF token, then the fields' rules; what fails shows the same page again with the
problem named next to its field (``aria-invalid``, ``aria-describedby``) and summed up in
an alert, with the status a program would expect (400, 403, 429, 503).

While an app waits, the pages pass its request along as ``ticket``; when the person is
done the browser goes back to the app (``ToClient``) with a 303. A page reached without a
ticket signs the person in to the server alone (and then shows who is signed in).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlencode

import phonenumbers
from authlib.oauth2.base import OAuth2Error
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    g,
    get_flashed_messages,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from flask_wtf.csrf import CSRFError, generate_csrf
from markupsafe import Markup
from phonenumbers import PhoneNumberFormat, PhoneNumberType
from pydantic import BaseModel, ValidationError

from authserver.accounts.phones import InvalidPhoneNumber
from authserver.accounts.services import authenticate_password
from authserver.authorize.browser_sessions import current_browser_session, sign_in_browser
from authserver.authorize.consents import grant_consent
from authserver.authorize.flow import (
    ErrorPage,
    InvalidTicket,
    NeedConsent,
    NeedSignIn,
    Outcome,
    PendingAuthorization,
    ToClient,
    decide,
    deny,
)
from authserver.authorize.schemas import AuthorizationRequest, EndSessionQuery
from authserver.context import settings
from authserver.errors import (
    AccountDisabled,
    InvalidCredentials,
    InvalidOtp,
    OtpRegionNotAllowed,
    PasswordRejected,
    RateLimited,
    ServiceUnavailable,
)
from authserver.extensions import db
from authserver.openapi import Reply, documented
from authserver.otp.services import LOGIN, PASSWORD_RESET, reset_password, sign_in_with_code
from authserver.otp.services import start_challenge as send_code
from authserver.web.forms import (
    CodeForm,
    CodeRequestForm,
    ConsentForm,
    PageQuery,
    PasswordResetForm,
    SignInForm,
    SignOutForm,
    SignUpForm,
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


@bp.app_context_processor
def _layout() -> dict[str, Any]:
    if request.blueprint != "web":
        return {}
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
class FormProblem(Exception):
    """The form cannot be used: show the page again with these messages."""

    def __init__(self, status: int, fields: dict[str, str], summary: str | None = None):
        super().__init__(summary or "")
        self.status, self.fields, self.summary = status, fields, summary


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


def _ticket(value: str | None) -> PendingAuthorization | None:
    if not value:
        return None
    pending = PendingAuthorization.from_ticket(value)
    g.ui_locales = pending.ui_locales
    return pending


def _query() -> PageQuery:
    if len(request.query_string) > MAX_QUERY:
        raise FormProblem(400, {}, _("The address is too long."))
    if any(len(values) > 1 for values in request.args.listvalues()):
        raise FormProblem(400, {}, _("The address repeats a parameter."))
    try:
        return PageQuery.model_validate(request.args.to_dict())
    except ValidationError:
        raise FormProblem(400, {}, _("The address holds something unexpected.")) from None


def _form(model: type[Model]) -> Model:
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
        pending = _ticket(request.form.get("ticket"))
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


@bp.errorhandler(InvalidTicket)
def _bad_ticket(error: InvalidTicket) -> Response:
    return error_page("expired_ticket" if error.expired else "invalid_ticket")


@bp.errorhandler(CSRFError)
def _csrf_failed(error: CSRFError) -> Response:
    db.session.rollback()
    return error_page("csrf", error.description)


# --- the authorization endpoint -------------------------------------------------------
@bp.route("/oauth/authorize", methods=["GET", "POST"])
@documented(
    "Authorization endpoint (RFC 6749 §4.1, PKCE, OpenID Connect)",
    description="""
    Starts a browser sign-in for an app. The request is checked (client, redirect URI
    registered exactly, `response_type=code`, PKCE `S256`, scopes); what the person must
    do next is shown on the sign-in or consent page; then the browser returns to the
    redirect URI with `code`, `state` and `iss` (RFC 9207), or with `error`. A client or
    redirect URI that cannot be trusted gets an error page, never a redirect. POST (a
    form) is answered with a 303 to the same request as a GET.
    """,
    tags=["oauth"],
    query=AuthorizationRequest,
    form=AuthorizationRequest,
    responses={
        302: Reply(
            description="To the redirect URI (`code`, `state`, `iss`; or `error`, "
            "`error_description`, `state`, `iss`), or to the sign-in or consent page.",
            headers={"Location": "Where the browser goes."},
        ),
        303: Reply(description="POST: the same request as a GET."),
        400: Reply(str, "An error page: the request cannot be trusted.", media_type="text/html"),
    },
    security=["browser", "none"],
)
def authorize() -> Response:
    if request.method == "POST":
        if request.mimetype != "application/x-www-form-urlencoded":
            return error_page("unsupported_media_type", status=415)
        # SameSite=Lax: the session cookie rides along on a top-level GET, not on a
        # cross-site POST.
        query = urlencode(list(request.form.items(multi=True)))
        return redirect(url_for("web.authorize") + "?" + query, 303)
    if len(request.query_string) > MAX_QUERY:
        return error_page("invalid_request", "The request is too long.")
    params: dict[str, str] = {}
    for name, values in request.args.lists():
        if len(values) > 1:  # RFC 6749 §3.1: never more than once
            return error_page("invalid_request", f"Parameter '{name[:64]}' is repeated.")
        params[name] = values[0]
    try:
        AuthorizationRequest.model_validate(params)
    except ValidationError as error:
        # Missing parameters are Authlib's to answer (a redirect, once the client and
        # redirect URI are known); malformed ones never reach it.
        problems = [item for item in error.errors() if item["type"] != "missing"]
        if problems:
            where = ".".join(str(part) for part in problems[0]["loc"]) or "request"
            return error_page("invalid_request", f"Parameter '{where[:64]}' is malformed.")
    pending = PendingAuthorization(params)
    g.ui_locales = pending.ui_locales
    outcome = decide(pending, current_browser_session())
    db.session.commit()
    return respond(outcome)


# --- signing in with a password ---------------------------------------------------------
@page_route("/signin", "Sign-in page (phone number and password)")
def sign_in() -> Response:
    query = _query()
    pending = _ticket(query.ticket)
    browser = current_browser_session()
    db.session.commit()
    if pending is None and browser is not None:
        return render_page("signed_in.html", browser=browser)
    hint = pending.login_hint if pending else None
    return render_page("sign_in.html", pending=pending, values={"phone": hint or ""})


@page_route("/signin", "Sign in with a phone number and password", form=SignInForm)
def sign_in_submit() -> Response:
    form = _form(SignInForm)
    pending = _ticket(form.ticket)
    client = pending.client() if pending else None
    try:
        user = authenticate_password(
            form.phone, form.password, client_id=client.client_id if client else None
        )
    except InvalidCredentials:
        return _again("sign_in.html", 400, pending, form, _("Wrong phone number or password."))
    except RateLimited as error:
        return _again("sign_in.html", 429, pending, form, _wait(error))
    except AccountDisabled:
        return _again("sign_in.html", 403, pending, form, _("This account is disabled."))
    sign_in_browser(user, ["pwd"])
    db.session.commit()
    return _continue(pending)


def _continue(pending: PendingAuthorization | None) -> Response:
    """After a sign-in: on with the app's request, or to the signed-in page."""
    if pending is None:
        return redirect(url_for("web.sign_in"), 303)
    outcome = decide(pending, current_browser_session())
    db.session.commit()
    return respond(outcome, after_form=True)


def _again(
    template: str,
    status: int,
    pending: PendingAuthorization | None,
    form: BaseModel | None,
    summary: str,
    fields: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    """The same page again, with what went wrong."""
    db.session.rollback()
    values = (
        form.model_dump(exclude={"csrf_token", "password", "new_password", "code"}) if form else {}
    )
    return render_page(
        template,
        status,
        pending=pending,
        values=values,
        errors=fields or {},
        summary=summary,
        **context,
    )


def _wait(error: RateLimited) -> str:
    minutes = max(1, -(-error.retry_after // 60))
    return ngettext(
        "Too many attempts. Try again in %(num)d minute.",
        "Too many attempts. Try again in %(num)d minutes.",
        minutes,
    )


# --- signing in (and up) with a code ----------------------------------------------------
@page_route("/signin/code", "Sign-in page: ask for a code by SMS")
def code_request() -> Response:
    pending = _ticket(_query().ticket)
    hint = pending.login_hint if pending else None
    return render_page("code_request.html", pending=pending, values={"phone": hint or ""})


@page_route("/signin/code", "Send a sign-in code by SMS", form=CodeRequestForm)
def code_request_submit() -> Response:
    form = _form(CodeRequestForm)
    pending = _ticket(form.ticket)
    return _send_code(form, pending, "code_request.html", CODE_PHONE, LOGIN, "web.code_verify")


def _send_code(
    form: CodeRequestForm,
    pending: PendingAuthorization | None,
    template: str,
    remember_as: str,
    purpose: str,
    next_page: str,
) -> Response:
    """Send a code (the budgets of POST /oauth/otp) and go to the page that takes it."""
    try:
        sent = send_code(form.phone, purpose)
    except InvalidPhoneNumber:
        message = _("Enter a mobile phone number.")
        return _again(template, 400, pending, form, message, {"phone": message})
    except OtpRegionNotAllowed:
        message = _("Codes cannot be sent to numbers of this country.")
        return _again(template, 400, pending, form, message, {"phone": message})
    except RateLimited as error:
        return _again(template, 429, pending, form, _wait(error))
    except ServiceUnavailable:
        return _again(
            template, 503, pending, form, _("The code could not be sent. Try again shortly.")
        )
    session[remember_as] = sent.phone
    if isinstance(form, SignUpForm):
        session[SIGNUP_NAMES] = [form.first_name, form.last_name]
    else:
        session.pop(SIGNUP_NAMES, None)
    if sent.code is not None:  # development only (AUTHSERVER_OTP_EXPOSE_CODE)
        flash(_("Development: the code is %(code)s.", code=sent.code))
    return redirect(url_for(next_page, ticket=form.ticket), 303)


@page_route("/signin/code/verify", "Sign-in page: enter the code received by SMS")
def code_verify() -> Response:
    return _code_page("code_verify.html", CODE_PHONE, "web.code_request")


def _code_page(template: str, remembered: str, request_page: str) -> Response:
    """The page that takes a code: for the number the previous page sent it to (else
    back to that page)."""
    pending = _ticket(_query().ticket)
    phone = session.get(remembered)
    if not phone:
        return redirect(url_for(request_page, ticket=pending.ticket() if pending else None))
    return render_page(template, pending=pending, phone=phone)


@page_route("/signin/code/verify", "Sign in (or sign up) with the code", form=CodeForm)
def code_verify_submit() -> Response:
    form = _form(CodeForm)
    pending = _ticket(form.ticket)
    phone = session.get(CODE_PHONE)
    if not phone:
        return redirect(url_for("web.code_request", ticket=form.ticket), 303)
    first, last = (session.get(SIGNUP_NAMES) or ["", ""])[:2]
    client = pending.client() if pending else None
    try:
        user = sign_in_with_code(
            phone,
            form.code,
            client_id=client.client_id if client else None,
            first_name=first,
            last_name=last,
        )
    except InvalidOtp:
        message = _("This code is wrong or has expired.")
        return _again(
            "code_verify.html", 400, pending, form, message, {"code": message}, phone=phone
        )
    except AccountDisabled:
        return _again(
            "code_verify.html", 403, pending, form, _("This account is disabled."), phone=phone
        )
    sign_in_browser(user, ["otp", "sms"])
    db.session.commit()
    return _continue(pending)


@page_route("/signup", "Sign-up page (names and phone number)")
def sign_up() -> Response:
    pending = _ticket(_query().ticket)
    hint = pending.login_hint if pending else None
    return render_page("sign_up.html", pending=pending, values={"phone": hint or ""})


@page_route("/signup", "Sign up: send a code to the new account's phone", form=SignUpForm)
def sign_up_submit() -> Response:
    form = _form(SignUpForm)
    pending = _ticket(form.ticket)
    return _send_code(form, pending, "sign_up.html", CODE_PHONE, LOGIN, "web.code_verify")


# --- password reset -----------------------------------------------------------------------
@page_route("/password-reset", "Password reset page: ask for a code by SMS")
def reset_request() -> Response:
    pending = _ticket(_query().ticket)
    return render_page("reset_request.html", pending=pending)


@page_route("/password-reset", "Send a password reset code by SMS", form=CodeRequestForm)
def reset_request_submit() -> Response:
    form = _form(CodeRequestForm)
    pending = _ticket(form.ticket)
    return _send_code(
        form, pending, "reset_request.html", RESET_PHONE, PASSWORD_RESET, "web.reset_verify"
    )


@page_route("/password-reset/verify", "Password reset page: code and new password")
def reset_verify() -> Response:
    return _code_page("reset_verify.html", RESET_PHONE, "web.reset_request")


@page_route("/password-reset/verify", "Set a new password with the code", form=PasswordResetForm)
def reset_verify_submit() -> Response:
    form = _form(PasswordResetForm)
    pending = _ticket(form.ticket)
    phone = session.get(RESET_PHONE)
    if not phone:
        return redirect(url_for("web.reset_request", ticket=form.ticket), 303)
    try:
        reset_password(phone, form.code, form.new_password)
    except PasswordRejected:
        message = _("Use at least 8 characters.")
        fields = {"new_password": message}
        return _again("reset_verify.html", 400, pending, form, message, fields, phone=phone)
    except InvalidOtp:
        message = _("This code is wrong or has expired.")
        return _again(
            "reset_verify.html", 400, pending, form, message, {"code": message}, phone=phone
        )
    except AccountDisabled:
        return _again(
            "reset_verify.html", 403, pending, form, _("This account is disabled."), phone=phone
        )
    session.pop(RESET_PHONE, None)
    flash(_("Your password has been changed. Sign in with your new password."))
    return redirect(url_for("web.sign_in", ticket=form.ticket), 303)


# --- consent ------------------------------------------------------------------------------
@page_route("/consent", "Consent page: allow an app what it asks")
def consent() -> Response:
    pending = _ticket(_query().ticket)
    if pending is None:
        return error_page("invalid_ticket")
    outcome = decide(pending, current_browser_session())
    db.session.commit()
    if isinstance(outcome, NeedConsent):
        return _consent_page(outcome)
    return respond(outcome)


def _consent_page(outcome: NeedConsent, status: int = 200, **context: Any) -> Response:
    browser = current_browser_session()
    return render_page(
        "consent.html",
        status,
        pending=outcome.pending,
        client=outcome.client,
        scopes=[(scope, scope_description(scope)) for scope in sorted(outcome.scope.split())],
        browser=browser,
        **context,
    )


@page_route("/consent", "Allow or deny an app what it asks", form=ConsentForm)
def consent_submit() -> Response:
    form = _form(ConsentForm)
    pending = _ticket(form.ticket)
    if pending is None:
        return error_page("invalid_ticket")
    browser = current_browser_session()
    outcome = decide(pending, browser)
    if isinstance(outcome, NeedConsent):
        assert browser is not None
        if form.decision == "deny":
            outcome = deny(pending, browser)
        else:
            grant_consent(browser.user_id, outcome.client, outcome.scope)
            outcome = decide(pending, browser)
    db.session.commit()
    return respond(outcome, after_form=True)


SCOPES = {
    "openid": lazy_gettext("Know who you are on this service"),
    "profile": lazy_gettext("See your name and your groups"),
    "phone": lazy_gettext("See your phone number"),
    "email": lazy_gettext("See your email address"),
}


def scope_description(scope: str) -> str:
    described = SCOPES.get(scope)
    return str(described) if described else _("Use: %(scope)s", scope=scope)


# --- signing out (RP-initiated logout) -----------------------------------------------------
@bp.route("/oauth/logout", methods=["GET", "POST"])
@documented(
    "End session endpoint (OpenID Connect RP-Initiated Logout)",
    description="""
    Ends the browser session (and the app sessions opened through it). With a valid
    `id_token_hint` at once, then to the `post_logout_redirect_uri` if the client
    registered it (with `state`); otherwise a page asks the person to confirm (POST with
    its CSRF token) and no redirect follows. An `id_token_hint` that does not verify: an
    error page.
    """,
    tags=["oauth"],
    query=EndSessionQuery,
    form=SignOutForm,
    responses={
        200: Reply(str, "The confirmation page, or the signed-out page.", media_type="text/html"),
        302: Reply(description="To the post-logout redirect URI."),
        400: Reply(str, "An error page.", media_type="text/html"),
    },
    security=["browser", "none"],
)
def end_session() -> Response:
    try:
        EndSessionQuery.model_validate(request.values.to_dict())
    except ValidationError:
        return error_page("invalid_request", "A logout parameter is malformed.")
    if request.method == "POST":
        if request.mimetype != "application/x-www-form-urlencoded":
            return error_page("unsupported_media_type", status=415)
        csrf.protect()
    g.ui_locales = request.values.get("ui_locales", "").split()
    server = current_app.extensions["authserver.oauth"]
    try:
        validated = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return error_page("invalid_request", error.description or "")
    browser = current_browser_session()
    if validated.needs_confirmation and request.method == "GET" and browser is not None:
        db.session.commit()
        return render_page("sign_out.html", browser=browser, client=validated.client)
    response = server.create_endpoint_response("end_session", validated)
    db.session.commit()
    return response or render_page("signed_out.html")
