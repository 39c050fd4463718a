from django.urls import path

from exams.views import candidate, proctor, review

urlpatterns = [
    path("take/<str:token>/", candidate.take_consent, name="take_consent"),
    path("take/<str:token>/decline", candidate.take_decline, name="take_decline"),
    path("take/<str:token>/check/", candidate.take_check, name="take_check"),
    path("take/<str:token>/check/download", candidate.take_check_download, name="take_check_download"),
    path("take/<str:token>/check/upload", candidate.take_check_upload, name="take_check_upload"),
    path("take/<str:token>/check/ping", candidate.take_check_ping, name="take_check_ping"),
    path("take/<str:token>/verify/", candidate.take_verify, name="take_verify"),
    path("take/<str:token>/verify/photo", candidate.take_verify_photo, name="take_verify_photo"),
    path("take/<str:token>/verify/status", candidate.take_verify_status, name="take_verify_status"),
    path("take/<str:token>/exam/", candidate.take_exam, name="take_exam"),
    path("take/<str:token>/finish", candidate.take_finish, name="take_finish"),
    path("take/<str:token>/done/", candidate.take_done, name="take_done"),
    path("proctor/", proctor.proctor_index, name="proctor_index"),
    path("proctor/exams/<uuid:code>/live", proctor.proctor_live, name="proctor_live"),
    path("proctor/sessions/<uuid:public_id>/", proctor.proctor_session, name="proctor_session"),
    path(
        "proctor/sessions/<uuid:public_id>/thumbnail.jpg", proctor.proctor_thumbnail, name="proctor_thumbnail"
    ),
    path(
        "proctor/sessions/<uuid:public_id>/reference.jpg", proctor.proctor_reference, name="proctor_reference"
    ),
    path("proctor/sessions/<uuid:public_id>/action", proctor.proctor_action, name="proctor_action"),
    path(
        "proctor/sessions/<uuid:public_id>/extra-time", proctor.proctor_extra_time, name="proctor_extra_time"
    ),
    path("proctor/exams/<uuid:code>/action", proctor.proctor_exam_action, name="proctor_exam_action"),
    path(
        "proctor/events/<uuid:public_id>/acknowledge", proctor.proctor_acknowledge, name="proctor_acknowledge"
    ),
    path("review/", review.review_index, name="review_index"),
    path("review/exams/<uuid:code>", review.review_exam, name="review_exam"),
    path("review/exams/<uuid:code>/export.<str:fmt>", review.review_export, name="review_export"),
    path("review/sessions/<uuid:public_id>/", review.review_session, name="review_session"),
    path("review/sessions/<uuid:public_id>/decide", review.review_decide, name="review_decide"),
    path("review/sessions/<uuid:public_id>/decide-type", review.review_bulk, name="review_bulk"),
    path("review/sessions/<uuid:public_id>/reference", review.review_reference, name="review_reference"),
    path("review/next", review.review_next, name="review_next"),
    path("review/events/<uuid:public_id>/decide", review.review_event, name="review_event"),
    path("evidence/<uuid:public_id>.jpg", review.evidence, name="evidence"),
    path("evidence/<uuid:public_id>/clip/<int:index>.jpg", review.evidence_frame, name="evidence_frame"),
]
