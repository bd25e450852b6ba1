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

from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.base import OAuth2Error
from flask import (
    Response,
    flash,
    g,
    redirect,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext, ngettext
from pydantic import BaseModel, ValidationError

from authserver.accounts.services import authenticate_password
from authserver.authorize.browser_sessions import current_browser_session, sign_in_browser
from authserver.authorize.consents import grant_consent
from authserver.authorize.flow import (
    NeedConsent,
    PendingAuthorization,
    decide,
    deny,
)
from authserver.authorize.schemas import AuthorizationRequest, EndSessionQuery
from authserver.context import authorization_server
from authserver.errors import (
    AccountDisabled,
    InvalidCredentials,
    InvalidOtp,
    InvalidPhoneNumber,
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
    PasswordResetForm,
    SignInForm,
    SignOutForm,
    SignUpForm,
)
from authserver.web.pages import (
    CODE_PHONE,
    MAX_QUERY,
    RESET_PHONE,
    SIGNUP_NAMES,
    bp,
    error_page,
    page_query,
    page_route,
    pending_from,
    read_form,
    render_page,
    respond,
)
from authserver.web.security import csrf


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
    return respond(outcome)


# --- signing in with a password ---------------------------------------------------------
@page_route("/signin", "Sign-in page (phone number and password)")
def sign_in() -> Response:
    query = page_query()
    pending = pending_from(query.ticket)
    browser = current_browser_session()
    if pending is None and browser is not None:
        return render_page("signed_in.html", browser=browser)
    hint = pending.login_hint if pending else None
    return render_page("sign_in.html", pending=pending, values={"phone": hint or ""})


@page_route("/signin", "Sign in with a phone number and password", form=SignInForm)
def sign_in_submit() -> Response:
    form = read_form(SignInForm)
    pending = pending_from(form.ticket)
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
    return _continue(pending)


def _continue(pending: PendingAuthorization | None) -> Response:
    """After a sign-in: on with the app's request, or to the signed-in page."""
    if pending is None:
        return redirect(url_for("web.sign_in"), 303)
    outcome = decide(pending, current_browser_session())
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
    return _phone_page("code_request.html")


def _phone_page(template: str) -> Response:
    """A page that asks for a phone number: the app's ``login_hint`` filled in."""
    pending = pending_from(page_query().ticket)
    hint = pending.login_hint if pending else None
    return render_page(template, pending=pending, values={"phone": hint or ""})


@page_route("/signin/code", "Send a sign-in code by SMS", form=CodeRequestForm)
def code_request_submit() -> Response:
    form = read_form(CodeRequestForm)
    pending = pending_from(form.ticket)
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
    pending = pending_from(page_query().ticket)
    phone = session.get(remembered)
    if not phone:
        return redirect(url_for(request_page, ticket=pending.ticket() if pending else None))
    return render_page(template, pending=pending, phone=phone)


@page_route("/signin/code/verify", "Sign in (or sign up) with the code", form=CodeForm)
def code_verify_submit() -> Response:
    form = read_form(CodeForm)
    pending = pending_from(form.ticket)
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
    return _continue(pending)


@page_route("/signup", "Sign-up page (names and phone number)")
def sign_up() -> Response:
    return _phone_page("sign_up.html")


@page_route("/signup", "Sign up: send a code to the new account's phone", form=SignUpForm)
def sign_up_submit() -> Response:
    form = read_form(SignUpForm)
    pending = pending_from(form.ticket)
    return _send_code(form, pending, "sign_up.html", CODE_PHONE, LOGIN, "web.code_verify")


# --- password reset -----------------------------------------------------------------------
@page_route("/password-reset", "Password reset page: ask for a code by SMS")
def reset_request() -> Response:
    return _phone_page("reset_request.html")


@page_route("/password-reset", "Send a password reset code by SMS", form=CodeRequestForm)
def reset_request_submit() -> Response:
    form = read_form(CodeRequestForm)
    pending = pending_from(form.ticket)
    return _send_code(
        form, pending, "reset_request.html", RESET_PHONE, PASSWORD_RESET, "web.reset_verify"
    )


@page_route("/password-reset/verify", "Password reset page: code and new password")
def reset_verify() -> Response:
    return _code_page("reset_verify.html", RESET_PHONE, "web.reset_request")


@page_route("/password-reset/verify", "Set a new password with the code", form=PasswordResetForm)
def reset_verify_submit() -> Response:
    form = read_form(PasswordResetForm)
    pending = pending_from(form.ticket)
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
    pending = pending_from(page_query().ticket)
    if pending is None:
        return error_page("invalid_ticket")
    outcome = decide(pending, current_browser_session())
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
    form = read_form(ConsentForm)
    pending = pending_from(form.ticket)
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
    server = authorization_server()
    try:
        validated = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        return error_page("invalid_request", error.description or "")
    browser = current_browser_session()
    if validated.needs_confirmation and request.method == "GET" and browser is not None:
        return render_page("sign_out.html", browser=browser, client=validated.client)
    response = server.create_endpoint_response("end_session", validated)
    return response or render_page("signed_out.html")
