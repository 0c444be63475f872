"""A requests transport that hands a request to a Flask app in-process."""
from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from flask import Flask
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from werkzeug.test import EnvironBuilder, run_wsgi_app


class WSGIAdapter(BaseAdapter):
    """Serve ``requests`` calls from ``app`` without a socket.

    The client's code path stays the one used for eSputnik (session, auth,
    headers, status handling); only the transport differs. Requests are
    dispatched to Flask's own ``wsgi_app``, so a site's WSGI middleware and the
    incoming request's ``Host`` header play no part in where they go.
    """

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        return type(self.app).wsgi_app(self.app, environ, start_response)

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        body = request.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        url = urlsplit(request.url or "/")
        builder = EnvironBuilder(path=url.path or "/", base_url=f"{url.scheme}://{url.netloc}/",
                                 query_string=url.query, method=request.method or "GET",
                                 headers=list(request.headers.items()), data=body or b"")
        environ = builder.get_environ()
        builder.close()
        app_iter, status, headers = run_wsgi_app(self._wsgi, environ, buffered=True)
        try:
            content = b"".join(app_iter)
        finally:
            close = getattr(app_iter, "close", None)
            if close is not None:
                close()
        response = requests.Response()
        response.status_code = int(status.split(" ", 1)[0])
        response.reason = status.partition(" ")[2]
        response.headers = CaseInsensitiveDict(headers.items())
        # What requests' own adapter reads from: read1() and streaming work the same.
        response.raw = urllib3.HTTPResponse(body=io.BytesIO(content), headers=dict(headers),
                                            status=response.status_code, preload_content=False)
        response.url = request.url or ""
        response.request = request
        response.encoding = requests.utils.get_encoding_from_headers(response.headers)
        return response

    def close(self) -> None:
        pass

