"""Team forms: an invitation (email and role), a member's role, and accepting an invitation."""
from wtforms import EmailField, PasswordField, SelectField, SubmitField
from wtforms.validators import InputRequired

from ..dashboard.forms import ServiceForm
from ..roles import DESCRIPTIONS, ROLES

ROLE_CHOICES = [(role, f"{role.capitalize()}: {DESCRIPTIONS[role]}") for role in ROLES]


class InviteForm(ServiceForm):
    email = EmailField("Email", validators=[InputRequired("Email is required")],
                       render_kw={"autocomplete": "off", "placeholder": "teammate@example.com"})
    # The service checks the role (and names the field), so the form does not validate the choice.
    role = SelectField("Role", default="viewer", validate_choice=False)
    submit = SubmitField("Send invitation")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = ROLE_CHOICES


class RoleForm(ServiceForm):
    role = SelectField("Role", validate_choice=False)
    submit = SubmitField("Change role")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.role.choices = [(role, role.capitalize()) for role in ROLES]


class AcceptForm(ServiceForm):
    password = PasswordField("Password", validators=[InputRequired("Password is required")],
                             render_kw={"autocomplete": "new-password", "minlength": 8})
    submit = SubmitField("Join the team")
