"""The custom event type form."""
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import InputRequired

from ..dashboard.forms import ServiceForm


class EventTypeForm(ServiceForm):
    name = StringField("Name", validators=[InputRequired("Name is required")],
                       render_kw={"placeholder": "order.shipped", "maxlength": 255})
    description = TextAreaField("Description", render_kw={"rows": 2, "maxlength": 2000})
    schema = TextAreaField("Schema", render_kw={"rows": 4, "spellcheck": "false"})
    submit = SubmitField("Add event type")

    def payload(self) -> dict:
        return {"name": self.name.data or "", "description": self.description.data or "",
                "schema": self.schema.data or None}
