"""The exception tree: run-stopping signals stand beside ApiError, never under it."""

import pytest

from insightly_etl.errors import (
    ApiError,
    BudgetExhausted,
    Halted,
    OutcomeUnknown,
    QuotaExhausted,
    ReserveReached,
    RunStopped,
    ServerError,
)


@pytest.mark.parametrize("stop", [QuotaExhausted, BudgetExhausted, ReserveReached, Halted])
def test_a_handler_that_fails_one_row_on_api_errors_lets_a_run_stop_through(stop):
    def fail_the_row():
        try:
            raise stop("stopping", method="POST", path="Contacts")
        except ApiError:
            return "row failed"

    with pytest.raises(stop):
        fail_the_row()
    assert issubclass(stop, RunStopped)


@pytest.mark.parametrize("error", [ServerError, OutcomeUnknown])
def test_answers_and_lost_answers_are_api_errors_not_stops(error):
    assert issubclass(error, ApiError)
    assert not issubclass(error, RunStopped)


def test_a_stop_names_the_request_and_its_exit_code():
    quota = QuotaExhausted("daily limit", status=429, method="GET", path="Contacts")
    assert str(quota) == "GET Contacts, HTTP 429: daily limit"
    assert quota.exit_code == 75
    assert quota.hint == "The account's daily request quota is spent; it frees up within 24 hours."
    assert Halted("stopping: not sent").exit_code == 130
    assert str(Halted("stopping: not sent")) == "stopping: not sent"
