"""What every dashboard form shares: a service's ValidationError lands on the field it names."""
from __future__ import annotations

from flask_wtf import FlaskForm

from ..services.common import ValidationError


class ServiceForm(FlaskForm):
    """A form the services validate; the form itself only checks the CSRF token and required fields."""

    def add_error(self, exc: ValidationError) -> None:
        """Show ``exc`` on the field it names, or above the form when no field has that name."""
        field = self._fields.get(exc.field)
        label = field.label.text if field is not None else exc.field.replace("_", " ").capitalize()
        # Services say "is required"; on the page that reads "Name is required".
        message = exc.message if exc.message[:1].isupper() else f"{label} {exc.message}"
        if field is not None and exc.field != "csrf_token":
            field.errors = [*field.errors, message]
        else:
            self.form_errors.append(message)

    @property
    def status(self) -> int:
        """The HTTP status to render the form with: 422 once it has errors."""
        return 422 if self.errors else 200
