from flask import Blueprint

bp = Blueprint("deliveries", __name__)
