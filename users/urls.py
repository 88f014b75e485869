from django.urls import re_path

from users.views import UserDetailView

urlpatterns = [
    # With or without the trailing slash: the tutorial calls /users/1, people type /users/1/.
    re_path(r"^users/(?P<user_id>[0-9]{1,30})/?$", UserDetailView.as_view(), name="user-detail"),
]
