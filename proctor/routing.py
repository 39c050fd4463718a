from django.urls import path

from exams.consumers import CandidateConsumer, ProctorConsumer

websocket_urlpatterns = [
    path("ws/take/<str:token>/", CandidateConsumer.as_asgi()),
    path("ws/proctor/exams/<uuid:code>/", ProctorConsumer.as_asgi()),
]
