"""Sign-up and log-in forms. The services validate the values; these carry CSRF and labels."""
from wtforms import EmailField, PasswordField, StringField, SubmitField
from wtforms.validators import InputRequired

from ..dashboard.forms import ServiceForm


class SignupForm(ServiceForm):
    org = StringField("Organization", validators=[InputRequired("Organization is required")],
                      render_kw={"autocomplete": "organization", "maxlength": 200})
    email = EmailField("Email", validators=[InputRequired("Email is required")], render_kw={"autocomplete": "email"})
    password = PasswordField("Password", validators=[InputRequired("Password is required")],
                             render_kw={"autocomplete": "new-password", "minlength": 8})
    submit = SubmitField("Sign up")


class LoginForm(ServiceForm):
    email = EmailField("Email", validators=[InputRequired("Email is required")], render_kw={"autocomplete": "email"})
    password = PasswordField("Password", validators=[InputRequired("Password is required")],
                             render_kw={"autocomplete": "current-password"})
    submit = SubmitField("Log in")


class ConfirmForm(ServiceForm):
    password = PasswordField("Password", validators=[InputRequired("Password is required")],
                             render_kw={"autocomplete": "current-password", "autofocus": True})
    submit = SubmitField("Confirm")
