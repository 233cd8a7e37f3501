from flask import Blueprint

bp = Blueprint("event_types", __name__)
