"""The sign-in, registration and sign-out pages (HTML, session cookie, CSRF-protected forms)."""

from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters

from accounts.forms import RegisterForm, SignInForm, field_ids
from accounts.services import UsernameTaken, register_user
from scoreboard_project import metrics
from scoreboard_project.ratelimits import RateLimited, RateLimitUnavailable, by_ip, enforce


def _limit(request: HttpRequest, *, group: str, rate_setting: str) -> str | None:
    """Count a form POST against the same per-IP budget as the JSON API; a sentence to show when it is spent."""
    try:
        enforce(request, group=group, rate_setting=rate_setting, key=by_ip)
    except RateLimited as limited:
        metrics.count_rejection(429)
        return f"Too many attempts from your network. Wait {limited.retry_after} seconds and try again."
    except RateLimitUnavailable:
        metrics.count_rejection(503)
        return "Signing in is briefly unavailable. Try again in a moment."
    return None


class SignInView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = SignInForm
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:  # noqa: ANN002, ANN003
        refusal = _limit(request, group="auth.login", rate_setting="RATE_LIMIT_LOGIN")
        if refusal:
            form = self.get_form_class()(request, initial={"username": request.POST.get("username", "")})
            context = self.get_context_data(form=form, refusal=refusal)
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: SignInForm) -> HttpResponse:
        field_ids(form)
        return super().form_invalid(form)


class SignOutView(auth_views.LogoutView):
    """POST signs out (Django's rule: a link or prefetch must not sign anyone out); GET asks to confirm."""

    http_method_names = ["get", "post", "options"]
    template_name = "accounts/logout.html"

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template_name)


@sensitive_post_parameters("password1", "password2")
def register(request: HttpRequest) -> HttpResponse:
    """Create an account through accounts.services, sign it in, and go to `next` or the play panel."""
    if request.user.is_authenticated:
        return redirect("play")
    form = RegisterForm(request.POST or None)
    if request.method == "POST":
        refusal = _limit(request, group="auth.register", rate_setting="RATE_LIMIT_REGISTER")
        if refusal:
            context = {"form": RegisterForm(initial={"username": request.POST.get("username", "")}), "refusal": refusal}
            return render(request, "accounts/register.html", context, status=429)
        if form.is_valid():
            try:
                user = register_user(username=form.cleaned_data["username"], password=form.cleaned_data["password1"])
            except UsernameTaken:
                form.add_error("username", "This username is already taken. Pick another one.")
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect(_safe_next(request) or "play")
        field_ids(form)
    return render(request, "accounts/register.html", {"form": form, "next": request.GET.get("next", "")})


def _safe_next(request: HttpRequest) -> str | None:
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return None
