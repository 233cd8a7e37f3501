"""The endpoint form: where to POST, and which event types and agents it subscribes to."""
from wtforms import (BooleanField, SelectField, SelectMultipleField, StringField, SubmitField, TextAreaField,
                     URLField)
from wtforms.validators import InputRequired
from wtforms.widgets import CheckboxInput, ListWidget

from ..catalogue import TEST_EVENT_TYPE
from ..dashboard.forms import ServiceForm
from ..dashboard.pickers import picker
from ..services import agents, choices, event_types


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
    # Beyond pickers.INLINE_MAX agents only the ticked ones are listed, and more are added by name or id.
    add_agent = StringField("Add an agent")
    enabled = BooleanField("Enabled", default=True)
    submit = SubmitField("Save endpoint")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # webhook.test goes to one endpoint on request, whatever it subscribes to.
        self.event_types.choices = [(t["name"], t["name"]) for t in event_types.all_types()
                                    if t["name"] != TEST_EVENT_TYPE]
        self.agent_picker = picker("agents", self.add_agent.name, self.add_agent.data)
        if self.agent_picker.options is not None:
            self.agent_ids.choices = [tuple(choice) for choice in self.agent_picker.options]
        else:  # only the ticked ones (a deleted agent's id, if any, as itself)
            ticked = list(dict.fromkeys(self.agent_ids.data or []))
            names = agents.names_of(ticked)
            self.agent_ids.choices = [(agent_id, names.get(agent_id, agent_id)) for agent_id in ticked]

    @property
    def many_agents(self) -> bool:
        """Whether the agents are too many to list: the form lists the ticked ones and adds by name."""
        return self.agent_picker.options is None

    def payload(self) -> dict:
        """The fields as the endpoints service (and the API) takes them; an agent typed but not yet added is
        added (ValidationError naming add_agent when it names no agent or several)."""
        agent_ids = list(self.agent_ids.data or [])
        if self.many_agents and self.add_agent.data:
            agent_ids.append(choices.resolve(choices.AGENTS, self.add_agent.data, "add_agent", existing=True))
        return {"url": self.url.data or "", "description": self.description.data or "",
                "event_types": list(self.event_types.data or []), "agent_ids": agent_ids,
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
