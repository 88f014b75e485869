"""Orders' answers when Users could not give it a user: one class per row of the outcome table."""

from __future__ import annotations

from project.problems import ServiceProblem


class UsersTimeout(ServiceProblem):
    status_code = 504
    default_code = "users_timeout"
    default_detail = "The Users service did not answer in time."


class UsersUnavailable(ServiceProblem):
    status_code = 503
    default_code = "users_unavailable"
    default_detail = "The Users service is unavailable; try again later."


class UsersCircuitOpen(ServiceProblem):
    status_code = 503
    default_code = "users_circuit_open"
    default_detail = "The Users service is failing; Orders is not calling it for a while."


class UsersBadResponse(ServiceProblem):
    status_code = 502
    default_code = "users_bad_response"
    default_detail = "The Users service answered with something that is not a user."
