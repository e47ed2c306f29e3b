//! A typed view of a parsed message: each payload an exchange reads, found once. The
//! exchanges ask the view ("the SA payload", "the nonce") instead of walking payload lists.

use super::*;
use crate::codec::SaPayload;

/// The payloads of one IKE message (the inner ones, for a protected message) by kind; the
/// first of each kind counts.
#[derive(Default)]
pub(super) struct MessageView<'a> {
    pub(super) sa: Option<&'a SaPayload>,
    pub(super) ke: Option<&'a KePayload>,
    pub(super) nonce: Option<&'a [u8]>,
    pub(super) idi: Option<&'a IdPayload>,
    pub(super) idr: Option<&'a IdPayload>,
    pub(super) auth: Option<&'a AuthPayload>,
    pub(super) tsi: Option<&'a TsPayload>,
    pub(super) tsr: Option<&'a TsPayload>,
    payloads: &'a [Payload],
}

impl<'a> MessageView<'a> {
    /// Looks at every payload once.
    pub(super) fn of(payloads: &'a [Payload]) -> Self {
        let mut v = MessageView {
            payloads,
            ..MessageView::default()
        };
        for p in payloads {
            match &p.body {
                PayloadBody::Sa(x) => v.sa = v.sa.or(Some(x)),
                PayloadBody::Ke(x) => v.ke = v.ke.or(Some(x)),
                PayloadBody::Nonce(x) => v.nonce = v.nonce.or(Some(x.as_slice())),
                PayloadBody::IdI(x) => v.idi = v.idi.or(Some(x)),
                PayloadBody::IdR(x) => v.idr = v.idr.or(Some(x)),
                PayloadBody::Auth(x) => v.auth = v.auth.or(Some(x)),
                PayloadBody::TsI(x) => v.tsi = v.tsi.or(Some(x)),
                PayloadBody::TsR(x) => v.tsr = v.tsr.or(Some(x)),
                _ => {}
            }
        }
        v
    }

    /// The first notification of a type.
    pub(super) fn notify(&self, kind: NotifyType) -> Option<&'a NotifyPayload> {
        find_notify(self.payloads, kind)
    }

    /// The first error notification (a response carrying one means the request failed).
    pub(super) fn error(&self) -> Option<NotifyType> {
        first_error_notify(self.payloads)
    }

    /// The data of every notification of a type (NAT detection sends several).
    pub(super) fn notify_data(&self, kind: NotifyType) -> Vec<&'a [u8]> {
        self.payloads
            .iter()
            .filter_map(|p| match &p.body {
                PayloadBody::Notify(n) if n.kind == kind => Some(n.data.as_slice()),
                _ => None,
            })
            .collect()
    }

    /// The SA, KE and Nonce every IKE_SA_INIT message carries, in either direction.
    pub(super) fn ike_sa_init(&self) -> Result<(&'a SaPayload, &'a KePayload, &'a [u8]), IkeError> {
        let sa = self.sa.ok_or(IkeError::MissingPayload("SA"))?;
        let ke = self.ke.ok_or(IkeError::MissingPayload("KE"))?;
        let nonce = self.nonce.ok_or(IkeError::MissingPayload("Nonce"))?;
        if !(16..=256).contains(&nonce.len()) {
            return Err(IkeError::InvalidPayload("nonce length"));
        }
        Ok((sa, ke, nonce))
    }
}
