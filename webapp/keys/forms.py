"""The API key form: a name and, for a per-agent key, its agent, event types and expiry."""
from datetime import timedelta

from wtforms import SelectField, StringField, SubmitField

from ..catalogue import INGESTIBLE
from ..dashboard.forms import ServiceForm
from ..dashboard.pickers import picker
from ..endpoints.forms import CheckboxesField
from ..models import utcnow
from ..services import choices, event_types

EXPIRY_CHOICES = [("", "Never"), ("1", "In 1 day"), ("7", "In 7 days"), ("30", "In 30 days"),
                  ("90", "In 90 days"), ("365", "In 1 year")]


class KeyForm(ServiceForm):
    name = StringField("Name", render_kw={"placeholder": "Production agent", "maxlength": 200})
    # The service checks the agent and types (and names the field), so the form does not validate the choices.
    # The agent is shown by a picker (agent_picker): a select of them all, or a search among many.
    agent_id = StringField("Agent")
    event_types = CheckboxesField("Event types", validate_choice=False)
    expires_in = SelectField("Expires", default="")
    submit = SubmitField("Create key")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.expires_in.choices = EXPIRY_CHOICES
        self.agent_picker = picker("agents", self.agent_id.name, self.agent_id.data)
        self.event_types.choices = [(name, name) for name in INGESTIBLE] + [
            (t.name, t.name) for t in event_types.custom_types()]

    def payload(self) -> dict:
        """The fields as the API keys service takes them."""
        days = self.expires_in.data
        agent_id = choices.resolve(choices.AGENTS, self.agent_id.data, "agent_id", existing=True)
        return {"name": self.name.data or "", "agent_id": agent_id,
                "event_types": list(self.event_types.data or []),
                "expires_at": utcnow() + timedelta(days=int(days)) if days else None}
