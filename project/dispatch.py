"""One URL, one API view per HTTP method (the HackSoft Django Styleguide's "one API per
operation"), without changing what a caller of the URL sees.

A ``MethodDispatch`` subclass names its views, ``views = {"GET": ListApi, "POST":
CreateApi}``, and is routed like any ``APIView`` (``as_view()``: CSRF-exempt as DRF makes
it). A request whose method has a view goes to that view, untouched (``HEAD`` to ``GET``'s,
as Django does); every other method (``OPTIONS``, and the 405 of ``PUT``, ``DELETE``, ...)
takes DRF's own path on the dispatcher, so those answers are DRF's, problem details
included. ``Allow`` names what the URL allows, not what the one view that answered does.

drf-spectacular lists one operation per (path, method) from the URLconf, reading the view
class behind each route. ``preprocess_method_dispatch``, a preprocessing hook (the documented
place to "alter which operations should be represented in your schema"), swaps the
dispatcher for the view that serves each method, so each operation's schema is read from
its own view's ``@extend_schema``, exactly as when one view served both.
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
