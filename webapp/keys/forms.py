"""The API key form."""
from wtforms import StringField, SubmitField

from ..dashboard.forms import ServiceForm


class KeyForm(ServiceForm):
    name = StringField("Name", render_kw={"placeholder": "Production agent", "maxlength": 200})
    submit = SubmitField("Create key")
