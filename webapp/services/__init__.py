"""Business logic shared by the HTML views and the API, so nothing is written twice."""
