"""The QC page: server-rendered HTML (Jinja2) with a little JavaScript, served on the API's port.

Routes: ``/`` (worklist), ``/login`` and ``/logout`` (the session cookie), ``/series/{uid}``,
``/trends``, ``/pairs``, ``/admin/limits``, and ``/static/...``. Every page reads the same store the
REST API reads and its scripts call the REST API with the session cookie, so the page shows nothing
REST does not; nothing is fetched from outside the installation (a strict Content-Security-Policy
says so to the browser).
"""
