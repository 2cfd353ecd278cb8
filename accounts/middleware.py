"""Ends sign-ins that are too old or idle (accounts/sessions.py).

A page's live refresh (an htmx request) and its push stream are the page keeping itself current,
not the agent doing something: they neither count as activity nor keep a sign-in alive. When a
refresh arrives after the sign-in ended, it is answered as signed out, and
`meetings.views.login_required_whole_page` moves the whole page to the sign-in page
(HX-Redirect); an open push stream checks its sign-in every minute and, once it has ended, sends
the page back to polling, whose next refresh does that (meetings/views/push.py).

Nothing answered to a signed-in person is kept by a browser or a proxy (`Cache-Control:
no-store`): those pages hold customers' meetings and the audit log, and a shared or kiosk browser
must not show them to the next person after sign-out."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers

from . import sessions


class SessionTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = time.time()
            reason = sessions.expiry_reason(request.session, now=now)
            if reason is not None:
                logout(request)
                messages.info(request, reason)
            elif not sessions.is_kept_current_by_the_page(request):
                sessions.note_activity(request.session, now=now)
        return self.get_response(request)


class NoStoreWhenSignedInMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        signed_in = request.user.is_authenticated
        response = self.get_response(request)
        if signed_in:
            # Pages, fragments, refusals and exports alike.
            add_never_cache_headers(response)
        return response
