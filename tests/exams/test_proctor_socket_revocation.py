"""An open proctor socket closes as soon as its user's rights go (logout,
deactivation, a lost role, removal from the exam), well before the periodic
recheck (consumers.PROCTOR_RECHECK_SECONDS, 15 s) would notice."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group
from django.test import Client

from exams import consumers
from proctor.asgi import application

# Well under PROCTOR_RECHECK_SECONDS: a close within this came from the push.
PROMPTLY = 5.0
pytestmark = pytest.mark.django_db(transaction=True)


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


async def _open(exam, client) -> WebsocketCommunicator:
    headers = [
        (b"origin", b"http://127.0.0.1"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    communicator = WebsocketCommunicator(application, f"/ws/proctor/exams/{exam.code}/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
    return communicator


async def _closes_promptly(communicator) -> None:
    assert consumers.PROCTOR_RECHECK_SECONDS > PROMPTLY * 2
    closed = await communicator.receive_output(timeout=PROMPTLY)
    assert closed == {"type": "websocket.close", "code": consumers.CLOSE_REFUSED}


def _deactivate(exam, proctor) -> None:
    proctor.is_active = False
    proctor.save()


def _remove_from_exam(exam, proctor) -> None:
    exam.proctors.remove(proctor)


def _clear_exam(exam, proctor) -> None:
    exam.proctors.clear()


def _remove_from_exam_reverse(exam, proctor) -> None:
    proctor.proctored_exams.remove(exam)


def _remove_role(exam, proctor) -> None:
    proctor.groups.remove(Group.objects.get(name="Proctor"))


def _delete_account(exam, proctor) -> None:
    proctor.delete()


def _change_password(exam, proctor) -> None:
    # An administrator resets it, or the proctor changes it in another browser.
    proctor.set_password("a-new-horse-2")
    proctor.save()


@pytest.mark.parametrize(
    "change",
    [
        _deactivate,
        _remove_from_exam,
        _clear_exam,
        _remove_from_exam_reverse,
        _remove_role,
        _delete_account,
        _change_password,
    ],
)
async def test_it_closes_the_socket_when_rights_change(exam, proctor, change):
    client = await sync_to_async(_signed_in)(proctor)
    communicator = await _open(exam, client)
    try:
        await sync_to_async(change)(exam, proctor)
        await _closes_promptly(communicator)
    finally:
        await communicator.disconnect()


async def test_it_closes_the_socket_when_the_proctor_logs_out(exam, proctor):
    here = await sync_to_async(_signed_in)(proctor)
    elsewhere = await sync_to_async(_signed_in)(proctor)  # another browser
    closing, staying = await _open(exam, here), await _open(exam, elsewhere)
    try:
        response = await sync_to_async(here.post)("/accounts/logout/")
        assert response.status_code == 302
        await _closes_promptly(closing)
        assert await staying.receive_nothing(timeout=1), "the other browser is still signed in"
    finally:
        await closing.disconnect()
        await staying.disconnect()


async def test_it_lets_only_the_browser_that_changed_the_password_back_in(exam, proctor):
    """Django cycles the session key of the browser that changed the password
    (``update_session_auth_hash``), so its socket closes too; the page reconnects
    by itself (static/js/socket.js) with the new cookie and is let in. The other
    browser's session no longer carries the password's hash: refused."""
    proctor.is_staff = True  # for the admin's own "change password" page
    await proctor.asave(update_fields=["is_staff"])
    here = await sync_to_async(_signed_in)(proctor)
    elsewhere = await sync_to_async(_signed_in)(proctor)
    sockets = [await _open(exam, here), await _open(exam, elsewhere)]
    try:
        response = await sync_to_async(here.post)(
            "/admin/password_change/",
            {
                "old_password": "correct-horse-1",
                "new_password1": "a-new-horse-2",
                "new_password2": "a-new-horse-2",
            },
        )
        assert response.status_code == 302
        for communicator in sockets:
            await _closes_promptly(communicator)
        sockets.append(await _open(exam, here))  # the reconnect, with the cycled session's cookie
        headers = [
            (b"origin", b"http://127.0.0.1"),
            (b"cookie", f"sessionid={elsewhere.cookies['sessionid'].value}".encode()),
        ]
        refused = WebsocketCommunicator(application, f"/ws/proctor/exams/{exam.code}/", headers=headers)
        sockets.append(refused)
        connected, _ = await refused.connect()
        assert not connected
        assert (await sync_to_async(elsewhere.get)("/proctor/")).status_code == 302  # signed out there too
    finally:
        for communicator in sockets:
            await communicator.disconnect()


async def test_it_keeps_the_socket_of_a_proctor_whose_rights_stay(exam, proctor, other_proctor):
    client = await sync_to_async(_signed_in)(proctor)
    communicator = await _open(exam, client)
    try:
        await sync_to_async(exam.proctors.add)(other_proctor)
        await sync_to_async(exam.proctors.remove)(other_proctor)
        proctor.first_name = "Pat"
        await proctor.asave()  # a save that changes no right: checked, and still allowed
        assert await communicator.receive_nothing(timeout=1)
    finally:
        await communicator.disconnect()
