from flask import Blueprint

bp = Blueprint("keys", __name__)
