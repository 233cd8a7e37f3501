"""The agent form."""
from wtforms import IntegerField, StringField, SubmitField, TextAreaField
from wtforms.validators import InputRequired, Optional

from ..dashboard.forms import ServiceForm


class AgentForm(ServiceForm):
    name = StringField("Name", validators=[InputRequired("Name is required")], render_kw={"maxlength": 200})
    description = TextAreaField("Description", render_kw={"rows": 3, "maxlength": 2000})
    event_budget_per_minute = IntegerField("Event budget", validators=[Optional()],
                                           render_kw={"min": 1, "placeholder": "default", "inputmode": "numeric"})
    submit = SubmitField("Save agent")

    def payload(self) -> dict:
        """The fields as the agents service (and the API) takes them."""
        return {"name": self.name.data or "", "description": self.description.data or "",
                "event_budget_per_minute": self.event_budget_per_minute.data}
