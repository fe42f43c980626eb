"""``install_page(app)``: the page's routers and its login redirect, added to the API app."""

from __future__ import annotations

from fastapi import FastAPI

from qcgate.api.web import auth, templating, views, worklist


def install_page(app: FastAPI) -> None:
    app.add_exception_handler(auth.LoginRequired, auth.login_redirect)
    for router in (templating.router, auth.router, worklist.router, views.router):
        app.include_router(router)
