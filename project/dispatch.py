"""One URL, one API view per HTTP method (the HackSoft Django Styleguide's "one API per
operation"), and the URL still answers as one DRF view did.

A ``MethodDispatch`` subclass names its views, ``views = {"GET": ListApi, "POST":
CreateApi}``, and is routed like any ``APIView`` (``as_view()``: CSRF-exempt, as DRF makes
it). A request whose method has a view goes to that view, untouched (``HEAD`` to ``GET``'s,
as Django does); any other method takes DRF's own path on the dispatcher: ``OPTIONS``, and
the 405 problem of ``PUT``, ``DELETE``, ... ``Allow`` names what the URL allows, whichever
view answered.

The OpenAPI schema: drf-spectacular walks the URLconf and, for each route to an ``APIView``,
makes one operation per allowed method (here GET and POST), reading it from the view class
behind the route. Its preprocessing hooks are the documented place to change that list of
(path, path_regex, method, callback) before any schema is read
(``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]``). ``preprocess_method_dispatch`` swaps
the dispatcher for the view that serves each method, so every operation is read from its
own view's ``@extend_schema``, exactly as when one view had both methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponseBase
from rest_framework.views import APIView

ViewFunction = Callable[..., HttpResponseBase]
Endpoint = tuple[str, str, str, ViewFunction]


class MethodDispatch(APIView):
    """Routes each request to the view for its method; see the module docstring."""

    #: HTTP method (upper case) -> the view class serving it.
    views: ClassVar[dict[str, type[APIView]]] = {}
    #: The same, as the view functions requests go to (built once per subclass).
    handlers: ClassVar[dict[str, ViewFunction]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {method: view.as_view() for method, view in cls.views.items()}
        if "GET" in cls.handlers:
            cls.handlers.setdefault("HEAD", cls.handlers["GET"])

    @property
    def allowed_methods(self) -> list[str]:
        """In DRF's order: ``GET, POST, HEAD, OPTIONS`` for a list-and-create URL."""
        return [
            method.upper()
            for method in self.http_method_names
            if method.upper() in self.handlers or method == "options"
        ]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        handler = self.handlers.get((request.method or "").upper())
        if handler is None:  # OPTIONS, or a 405: DRF answers, for the whole URL
            return super().dispatch(request, *args, **kwargs)
        response = handler(request, *args, **kwargs)
        response["Allow"] = ", ".join(self.allowed_methods)
        return response


def preprocess_method_dispatch(endpoints: list[Endpoint]) -> list[Endpoint]:
    """drf-spectacular ``PREPROCESSING_HOOKS`` entry: each method's own view documents it."""
    return [
        (path, path_regex, method, _view_for(callback, method))
        for path, path_regex, method, callback in endpoints
    ]


def _view_for(callback: ViewFunction, method: str) -> ViewFunction:
    cls = getattr(callback, "cls", None)
    if isinstance(cls, type) and issubclass(cls, MethodDispatch):
        return cls.handlers[method]
    return callback
