"""The forms of the event schema page."""
from wtforms import HiddenField, SubmitField, TextAreaField

from ..dashboard.forms import ServiceForm

SCHEMA_HINT = ('A JSON Schema (draft 2020-12) for the whole event, as your agents send it, e.g. '
               '{"properties": {"data": {"type": "object", "required": ["order_id"], '
               '"properties": {"order_id": {"type": "string"}}}}}. Empty: any event is accepted.')


class SchemaForm(ServiceForm):
    schema = TextAreaField("Schema", render_kw={"rows": 14, "spellcheck": "false"})
    submit = SubmitField("Save schema")


class ModeForm(ServiceForm):
    type = HiddenField()
    mode = HiddenField()
