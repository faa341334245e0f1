"""The owners' console: the web pages where each person sees and acts on their exceptions.

Served by the worker on its web port under /console (console/web.py). People sign in
through personal signed links (console/links.py) that start a session (console/session.py);
machines keep using API tokens. Each person sees what routing gives them and their team
(console/scope.py); acting goes through the same store transitions as the CLI and the API.
"""
