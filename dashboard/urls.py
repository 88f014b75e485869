from django.urls import path

from dashboard import views

urlpatterns = [
    path("resilience/", views.page, name="resilience"),
    path("resilience/state.json", views.state, name="resilience-state"),
    path("resilience/fault/", views.fault_start, name="resilience-fault-start"),
    path("resilience/fault/clear/", views.fault_clear, name="resilience-fault-clear"),
]
