"""The pages' own login and logout, for every active user; the admin keeps its login."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from .auth import ThrottledLoginForm

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(
            authentication_form=ThrottledLoginForm, redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
