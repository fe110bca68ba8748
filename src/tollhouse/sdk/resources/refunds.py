"""`client.refunds`: RefundsResource and AsyncRefundsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, new_idempotency_key
from tollhouse.sdk.models.refunds import Refund


class RefundsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def create(
        self,
        *,
        hold_id: str,
        amount_micros: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Give a captured charge back to the customer's wallet (operators): 201 with the refund
        and its credit note. The capture stays in the ledger; a grant (source `refund`) gives
        the micros back. 409 `charge-not-refundable` for a hold not captured, `refund-exceeds-
        charge` beyond what is left to refund; the same key again answers 200.

        `POST /v1/refunds`

        `hold_id`: The captured hold to give back: a session's fee (`hold_id` of the session), a
        pack, a call (`hold_id` in the customer's transactions).

        `amount_micros`: Micros to give back; default: all the capture took that is not refunded
        yet.

        `reason`: Printed on the credit note.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Refund](
                "POST",
                "/v1/refunds",
                Refund,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "hold_id": hold_id,
                    },
                    amount_micros=amount_micros,
                    reason=reason,
                ),
                retryable=True,
            )
        )


class AsyncRefundsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def create(
        self,
        *,
        hold_id: str,
        amount_micros: int | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> Refund:
        """Give a captured charge back to the customer's wallet (operators): 201 with the refund
        and its credit note. The capture stays in the ledger; a grant (source `refund`) gives
        the micros back. 409 `charge-not-refundable` for a hold not captured, `refund-exceeds-
        charge` beyond what is left to refund; the same key again answers 200.

        `POST /v1/refunds`

        `hold_id`: The captured hold to give back: a session's fee (`hold_id` of the session), a
        pack, a call (`hold_id` in the customer's transactions).

        `amount_micros`: Micros to give back; default: all the capture took that is not refunded
        yet.

        `reason`: Printed on the credit note.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Refund](
                "POST",
                "/v1/refunds",
                Refund,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "hold_id": hold_id,
                    },
                    amount_micros=amount_micros,
                    reason=reason,
                ),
                retryable=True,
            )
        )
