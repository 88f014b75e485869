from django.urls import re_path

from users.views import UserDetailView

USER_ID = r"(?P<user_id>[0-9]{1,30})"

urlpatterns = [
    # The tutorial calls /users/1; people type /users/1/. Both work; the first is documented.
    re_path(rf"^users/{USER_ID}$", UserDetailView.as_view(), name="user-detail"),
    re_path(rf"^users/{USER_ID}/$", UserDetailView.as_view(schema=None)),
]
