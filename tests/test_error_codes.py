"""TWS message codes: each code's strategy, notices never logged as errors, range defaults,
farm decoding, agreement with ibapi's own codes, and a doc that cannot drift from the table."""

import logging
import re
from pathlib import Path

import attrs
import ibapi.errors
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkr_connector.protocol import codes, farms
from ibkr_connector.protocol.codes import (
    CODES,
    TABLE,
    Category,
    CodeInfo,
    Strategy,
    classify,
    is_connectivity_loss,
)
from ibkr_connector.protocol.farms import FarmKind, FarmState, FarmStatus, farm_status

S = Strategy
DOC = Path(__file__).resolve().parents[1] / "docs" / "errors.md"

REQUIRED = {
    100: S.BACKOFF_AND_RETRY,
    101: S.MARK_SUBSCRIPTION_FAILED,
    103: S.RESYNC_ORDER_IDS,
    110: S.FAIL_REQUEST,
    135: S.CANCEL_REFUSED,
    161: S.CANCEL_REFUSED,
    162: S.FAIL_REQUEST,
    200: S.FAIL_REQUEST,
    201: S.REJECT_ORDER,
    202: S.ORDER_CANCELLED,
    300: S.IGNORE,
    317: S.IGNORE,
    321: S.FAIL_REQUEST,
    322: S.FAIL_REQUEST,
    326: S.CLIENT_ID_IN_USE,
    354: S.TRY_DELAYED,
    362: S.FAIL_REQUEST,
    399: S.WARN,
    502: S.RECONNECT,
    503: S.FAIL_REQUEST,
    504: S.RECONNECT,
    505: S.RESET_CONNECTION,
    507: S.RECONNECT,
    1100: S.WAIT_FOR_RESTORE,
    1101: S.RESTORE_SUBSCRIPTIONS,
    1102: S.RESUME,
    2103: S.FARM_NOTICE,
    2104: S.FARM_NOTICE,
    2105: S.FARM_NOTICE,
    2106: S.FARM_NOTICE,
    2107: S.FARM_NOTICE,
    2108: S.FARM_NOTICE,
    2109: S.IGNORE,
    2110: S.LINK_NOTICE,
    2157: S.FARM_NOTICE,
    2158: S.FARM_NOTICE,
    10089: S.TRY_DELAYED,
    10090: S.MARK_SUBSCRIPTION_DEGRADED,
    10167: S.MARK_SUBSCRIPTION_DEGRADED,
    10168: S.MARK_SUBSCRIPTION_FAILED,
    10197: S.MARK_SUBSCRIPTION_FAILED,
}


# --- the table itself -------------------------------------------------------------------


@pytest.mark.parametrize(("code", "strategy"), sorted(REQUIRED.items()))
def test_every_required_code_is_listed_with_its_strategy(code: int, strategy: Strategy) -> None:
    assert code in CODES
    assert CODES[code].strategy is strategy
    assert classify(code) is CODES[code]


def test_table_has_no_duplicate_codes() -> None:
    codes = [info.code for info in TABLE]
    assert len(codes) == len(set(codes)) == len(CODES)


def test_every_meaning_is_one_non_empty_line() -> None:
    for info in TABLE:
        assert info.meaning.strip() and "\n" not in info.meaning, info.code


def test_a_code_info_with_an_empty_meaning_is_refused() -> None:
    with pytest.raises(ValueError, match="one non-empty line"):
        CodeInfo(1, Category.SYSTEM, S.WARN, "  ", True, logging.ERROR)


def test_the_mapping_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        CODES[1] = CODES[100]  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        CODES[100].strategy = S.IGNORE  # type: ignore[misc]


# --- notices are not errors -------------------------------------------------------------


@pytest.mark.parametrize("code", [2104, 2106, 2158])
def test_farm_ok_notices_are_not_errors_and_log_below_warning(code: int) -> None:
    info = CODES[code]
    assert not info.is_error
    assert info.log_level < logging.WARNING
    assert info.category is Category.INFORMATION


def test_routine_notices_log_below_warning() -> None:
    # Information-only codes and healthy farm states are the normal chatter of a session.
    for info in TABLE:
        status = farm_status(info.code)
        if info.strategy is S.IGNORE or (status and status.state is not FarmState.BROKEN):
            assert not info.is_error, info.code
            assert info.log_level < logging.WARNING, info.code


def test_no_notice_logs_above_warning_and_no_error_logs_below_it() -> None:
    for info in TABLE:
        if info.is_error:
            assert info.log_level >= logging.WARNING, info.code
        else:
            assert info.log_level <= logging.WARNING, info.code


def test_a_notice_logged_as_an_error_is_refused() -> None:
    with pytest.raises(ValueError, match="notice but logs above WARNING"):
        CodeInfo(2104, Category.INFORMATION, S.FARM_NOTICE, "ok", False, logging.ERROR)
    with pytest.raises(ValueError, match="error but logs below WARNING"):
        CodeInfo(201, Category.ORDER, S.REJECT_ORDER, "rejected", True, logging.INFO)


def test_broken_farms_are_warnings_not_errors() -> None:
    for code in (2103, 2105, 2157):
        assert not CODES[code].is_error
        assert CODES[code].log_level == logging.WARNING


# --- connectivity -------------------------------------------------------------------------


def test_1100_waits_for_restore_without_reconnecting_the_socket() -> None:
    info = CODES[1100]
    assert info.strategy is S.WAIT_FOR_RESTORE
    assert info.strategy not in {S.RECONNECT, S.RESET_CONNECTION}
    assert not info.is_error
    assert is_connectivity_loss(1100)


def test_1101_restores_subscriptions_and_1102_resumes() -> None:
    assert CODES[1101].strategy is S.RESTORE_SUBSCRIPTIONS
    assert CODES[1102].strategy is S.RESUME
    assert not is_connectivity_loss(1101)
    assert not is_connectivity_loss(1102)


def test_2110_is_a_link_notice_not_a_reconnect() -> None:
    info = CODES[2110]
    assert info.strategy is S.LINK_NOTICE
    assert not info.is_error
    assert farm_status(2110) is None
    assert is_connectivity_loss(2110)


@pytest.mark.parametrize("code", [326, 502, 504, 505, 507, 508, 512, 520, 1100, 1300, 2110])
def test_codes_that_cut_us_off_from_ib_are_connectivity_losses(code: int) -> None:
    assert is_connectivity_loss(code)


@pytest.mark.parametrize("code", [100, 200, 201, 354, 2103, 2104, 2105, 2157, 10167, 579])
def test_request_errors_and_single_farms_are_not_connectivity_losses(code: int) -> None:
    assert not is_connectivity_loss(code)


def test_362_is_an_order_price_error_not_market_data() -> None:
    assert CODES[362].category is Category.ORDER
    assert CODES[362].strategy is S.FAIL_REQUEST


def test_order_warnings_do_not_reject_a_live_order() -> None:
    # 399 and 404 arrive for orders TWS keeps working: rejecting them would lose track of
    # a live order.
    for code in (399, 404, 2109):
        assert CODES[code].strategy in {S.WARN, S.IGNORE}
        assert not CODES[code].is_error


# --- ibapi's own codes -------------------------------------------------------------------


def _ibapi_codes() -> dict[int, str]:
    pairs = [v for v in vars(ibapi.errors).values() if isinstance(v, ibapi.errors.CodeMsgPair)]
    return {pair.code(): pair.msg() for pair in pairs}


def test_every_ibapi_client_code_is_handled_deliberately() -> None:
    # Either listed, or a "<request> ... Error - " send failure that the 500-599 default
    # resets. A new kind of ibapi code (like 579, 585, 588 once were) fails here.
    for code, message in _ibapi_codes().items():
        if code in CODES:
            continue
        assert message.rstrip().endswith("Error -"), (code, message)
        assert classify(code).strategy is S.RESET_CONNECTION, code


def test_listed_ibapi_codes_are_ibapis_codes() -> None:
    ibapi_codes = _ibapi_codes()
    for info in TABLE:
        if 500 <= info.code < 600:
            assert info.code in ibapi_codes, info.code


def test_send_failures_reset_the_connection() -> None:
    for code in (510, 512, 515, 531, 550):
        assert CODES[code].strategy is S.RESET_CONNECTION
        assert CODES[code].category is Category.PROTOCOL


def test_codes_refused_before_sending_fail_only_their_request() -> None:
    for code in (503, 579, 585, 588):
        assert CODES[code].strategy is S.FAIL_REQUEST
        assert CODES[code].category is Category.CLIENT


# --- codes not in the table ------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "category", "strategy", "is_error"),
    [
        (150, Category.REQUEST, S.FAIL_REQUEST, True),
        (499, Category.REQUEST, S.FAIL_REQUEST, True),
        (509, Category.PROTOCOL, S.RESET_CONNECTION, True),
        (599, Category.PROTOCOL, S.RESET_CONNECTION, True),
        (1150, Category.SYSTEM, S.WARN, False),
        (2150, Category.INFORMATION, S.WARN, False),
        (2199, Category.INFORMATION, S.WARN, False),
        (10349, Category.REQUEST, S.FAIL_REQUEST, True),
        (99999, Category.REQUEST, S.FAIL_REQUEST, True),
        (0, Category.SYSTEM, S.WARN, True),
        (-1, Category.SYSTEM, S.WARN, True),
        (700, Category.SYSTEM, S.WARN, True),
        (2050, Category.SYSTEM, S.WARN, True),
        (5000, Category.SYSTEM, S.WARN, True),
    ],
)
def test_unknown_codes_default_by_ibs_ranges(
    code: int, category: Category, strategy: Strategy, is_error: bool
) -> None:
    assert code not in CODES
    info = classify(code)
    assert (info.code, info.category, info.strategy, info.is_error) == (
        code, category, strategy, is_error,
    )
    assert info.meaning


def test_unknown_warnings_are_notices_not_errors() -> None:
    info = classify(2150)
    assert not info.is_error
    assert info.log_level == logging.WARNING


@given(st.integers(min_value=-(2**40), max_value=2**40))
def test_classify_never_fails_and_keeps_its_promises(code: int) -> None:
    info = classify(code)
    assert info.code == code
    assert info.meaning.strip()
    assert (info.log_level >= logging.WARNING) if info.is_error else (
        info.log_level <= logging.WARNING
    )


# --- farm notices ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        (2103, "Market data farm connection is broken:usfarm",
         FarmStatus(FarmKind.MARKET_DATA, FarmState.BROKEN, "usfarm")),
        (2104, "Market data farm connection is OK:usfarm.nj",
         FarmStatus(FarmKind.MARKET_DATA, FarmState.OK, "usfarm.nj")),
        (2105, "HMDS data farm connection is broken:ushmds",
         FarmStatus(FarmKind.HISTORICAL, FarmState.BROKEN, "ushmds")),
        (2106, "HMDS data farm connection is OK:cashhmds",
         FarmStatus(FarmKind.HISTORICAL, FarmState.OK, "cashhmds")),
        (2107, "HMDS data farm connection is inactive but should be available upon demand.ushmds",
         FarmStatus(FarmKind.HISTORICAL, FarmState.INACTIVE, "ushmds")),
        (2108, "Market data farm connection is inactive but should be available upon demand.usopt",
         FarmStatus(FarmKind.MARKET_DATA, FarmState.INACTIVE, "usopt")),
        (2119, "Market data farm is connecting:usfuture",
         FarmStatus(FarmKind.MARKET_DATA, FarmState.CONNECTING, "usfuture")),
        (2157, "Sec-def data farm connection is broken:secdefil",
         FarmStatus(FarmKind.SECURITY_DEFINITION, FarmState.BROKEN, "secdefil")),
        (2158, "Sec-def data farm connection is OK:secdefnj",
         FarmStatus(FarmKind.SECURITY_DEFINITION, FarmState.OK, "secdefnj")),
    ],
)
def test_farm_notices_decode_kind_state_and_farm(
    code: int, message: str, expected: FarmStatus
) -> None:
    assert farm_status(code, message) == expected


def test_farm_name_is_empty_when_tws_gives_none() -> None:
    assert farm_status(2104) == FarmStatus(FarmKind.MARKET_DATA, FarmState.OK, "")
    status = farm_status(2104, "Market data farm connection is OK")
    assert status is not None and status.farm == ""


@pytest.mark.parametrize("code", [1100, 1102, 2100, 2109, 2110, 354, 200, 99999])
def test_other_codes_are_not_farm_notices(code: int) -> None:
    assert farm_status(code, "anything:usfarm") is None


def test_farm_notices_and_farm_status_agree() -> None:
    notices = {info.code for info in TABLE if info.strategy is S.FARM_NOTICE}
    decoded = {info.code for info in TABLE if farm_status(info.code) is not None}
    assert notices == decoded


@pytest.mark.parametrize("name", farms.__all__)
def test_farm_decoding_is_still_importable_from_codes(name: str) -> None:
    assert name in codes.__all__
    assert getattr(codes, name) is getattr(farms, name)


# --- the doc cannot drift ------------------------------------------------------------------

ROW = re.compile(r"^\|\s*(-?\d+)\s*\|(.*)\|\s*$")


def _doc_rows() -> dict[int, list[list[str]]]:
    rows: dict[int, list[list[str]]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            cells = [cell.strip() for cell in match.group(2).split("|")]
            rows.setdefault(int(match.group(1)), []).append(cells)
    return rows


def test_docs_list_every_code_once_with_its_category_strategy_and_level() -> None:
    rows = _doc_rows()
    for code, info in CODES.items():
        assert code in rows, f"docs/errors.md does not list {code}"
        assert len(rows[code]) == 1, f"docs/errors.md lists {code} twice"
        meaning, category, strategy, level, why = rows[code][0]
        assert category == info.category.name, code
        assert strategy == info.strategy.name, code
        assert level.split()[0] == logging.getLevelName(info.log_level), code
        assert ("(notice)" in level) is not info.is_error, code
        assert meaning and why, code


def test_docs_list_no_code_missing_from_the_table() -> None:
    assert set(_doc_rows()) <= set(CODES)


# --- every strategy is acted on, and the doc says by whom ----------------------------------


_PACKAGE = Path(__file__).resolve().parents[1] / "ibkr_connector"
# Acted on by logging at the code's level, which every code gets.
_LOGGED_ONLY = {S.IGNORE, S.WARN}


def _actor_sources() -> str:
    return "\n".join(p.read_text() for p in sorted((_PACKAGE / "actors").glob("*.py")))


@pytest.mark.parametrize("strategy", [s for s in Strategy if s not in _LOGGED_ONLY],
                         ids=lambda s: s.name)
def test_every_strategy_is_acted_on_by_some_actor(strategy: Strategy) -> None:
    assert re.search(rf"\b(?:Strategy|S)\.{strategy.name}\b", _actor_sources()), (
        f"no actor acts on {strategy.name}: act on it or remove it")


def test_docs_say_what_every_strategy_does_once() -> None:
    section = DOC.read_text().split("## Strategies", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\| ([A-Z_]+) \|", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(s.name for s in Strategy)


def test_no_actor_tests_code_numbers_instead_of_classifying() -> None:
    # One classify: `event.code == 100` scattered in actors is how the table drifts.
    assert not re.search(r"\.code\s*(?:==|in\s*\()", _actor_sources())
