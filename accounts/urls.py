"""Sign-in, sign-out and "My access" (names without a namespace: django-allauth reverses its own)."""
from django.urls import path

from accounts import oidc, revalidation, views
from accounts.access import public

urlpatterns = [
    path("login/", views.sign_in, name="login"),
    path("logout/", views.sign_out, name="logout"),
    path("me/", views.my_access, name="my_access"),
    path("revalidate/", revalidation.revalidate, name="revalidate"),
    path("oidc/<str:provider_id>/login/", public(oidc.entra_login), name="openid_connect_login"),
    path("oidc/<str:provider_id>/login/callback/", public(oidc.entra_callback), name="openid_connect_callback"),
]
