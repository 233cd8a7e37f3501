"""The endpoint form: where to POST, and which event types and agents it subscribes to."""
from wtforms import BooleanField, SelectField, SelectMultipleField, SubmitField, TextAreaField, URLField
from wtforms.validators import InputRequired
from wtforms.widgets import CheckboxInput, ListWidget

from ..catalogue import TEST_EVENT_TYPE
from ..dashboard.forms import ServiceForm
from ..services import agents, event_types


class CheckboxesField(SelectMultipleField):
    """A multiple choice shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class EndpointForm(ServiceForm):
    url = URLField("URL", validators=[InputRequired("URL is required")],
                   render_kw={"placeholder": "https://example.com/webhooks/agenthooks", "maxlength": 2048})
    description = TextAreaField("Description", render_kw={"rows": 2, "maxlength": 2000})
    # The service checks the values (and names the field), so the form does not validate the choices.
    event_types = CheckboxesField("Event types", validate_choice=False)
    agent_ids = CheckboxesField("Agents", validate_choice=False)
    enabled = BooleanField("Enabled", default=True)
    submit = SubmitField("Save endpoint")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # webhook.test goes to one endpoint on request, whatever it subscribes to.
        self.event_types.choices = [(t["name"], t["name"]) for t in event_types.all_types()
                                    if t["name"] != TEST_EVENT_TYPE]
        self.agent_ids.choices = [(agent.id, agent.name) for agent in agents.all_agents()]

    def payload(self) -> dict:
        """The fields as the endpoints service (and the API) takes them."""
        return {"url": self.url.data or "", "description": self.description.data or "",
                "event_types": list(self.event_types.data or []), "agent_ids": list(self.agent_ids.data or []),
                "enabled": bool(self.enabled.data)}


# How far back "Recover" looks for failed deliveries, in hours.
RECOVER_PERIODS = [("1", "the last hour"), ("6", "the last 6 hours"), ("24", "the last 24 hours"),
                   ("72", "the last 3 days"), ("168", "the last 7 days"), ("720", "the last 30 days")]


class RecoverForm(ServiceForm):
    hours = SelectField("Failed since", default="24")
    submit = SubmitField("Resend failed deliveries")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hours.choices = RECOVER_PERIODS
