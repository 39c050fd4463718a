"""The websocket routes. Named like the HTTP ones: ``exams.live.socket_path()``
and ``{% socket_path %}`` build their paths with Django's ``reverse()``."""

from django.urls import path

from exams.consumers import CandidateConsumer, ProctorConsumer

websocket_urlpatterns = [
    path("ws/take/<str:token>/", CandidateConsumer.as_asgi(), name="candidate_socket"),
    path("ws/proctor/exams/<uuid:code>/", ProctorConsumer.as_asgi(), name="proctor_socket"),
]

# reverse(urlconf=...) reads a module's ``urlpatterns``.
urlpatterns = websocket_urlpatterns
