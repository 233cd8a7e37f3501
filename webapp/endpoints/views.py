from flask import Blueprint

bp = Blueprint("endpoints", __name__)
