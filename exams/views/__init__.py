from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from exams.access import is_proctor, is_reviewer


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    if is_proctor(user) and not is_reviewer(user):
        return redirect("proctor_index")
    if is_reviewer(user) and not is_proctor(user):
        return redirect("review_index")
    return render(request, "home.html", {"proctor": is_proctor(user), "reviewer": is_reviewer(user)})
