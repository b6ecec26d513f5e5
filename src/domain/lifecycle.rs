//! The lifecycle statuses of French e-invoicing (the reform's "statuts de cycle de
//! vie"), exchanged between the approved platforms: a code, an English id and the
//! French name. Some of them change what dunning may do with an invoice.

/// One lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LifecycleStatus {
    pub code: u16,
    /// `deposited`, `rejected`, …
    pub id: &'static str,
    /// `Déposée`, `Rejetée`, …
    pub fr: &'static str,
}

/// Every status, by code.
pub const STATUSES: [LifecycleStatus; 14] = [
    LifecycleStatus {
        code: 200,
        id: "deposited",
        fr: "Déposée",
    },
    LifecycleStatus {
        code: 201,
        id: "issued",
        fr: "Émise",
    },
    LifecycleStatus {
        code: 202,
        id: "received",
        fr: "Reçue",
    },
    LifecycleStatus {
        code: 203,
        id: "made_available",
        fr: "Mise à disposition",
    },
    LifecycleStatus {
        code: 204,
        id: "in_hand",
        fr: "Prise en charge",
    },
    LifecycleStatus {
        code: 205,
        id: "approved",
        fr: "Approuvée",
    },
    LifecycleStatus {
        code: 206,
        id: "partially_approved",
        fr: "Approuvée partiellement",
    },
    LifecycleStatus {
        code: 207,
        id: "disputed",
        fr: "En litige",
    },
    LifecycleStatus {
        code: 208,
        id: "suspended",
        fr: "Suspendue",
    },
    LifecycleStatus {
        code: 209,
        id: "completed",
        fr: "Complétée",
    },
    LifecycleStatus {
        code: 210,
        id: "refused",
        fr: "Refusée",
    },
    LifecycleStatus {
        code: 211,
        id: "payment_sent",
        fr: "Paiement transmis",
    },
    LifecycleStatus {
        code: 212,
        id: "collected",
        fr: "Encaissée",
    },
    LifecycleStatus {
        code: 213,
        id: "rejected",
        fr: "Rejetée",
    },
];

/// Lower case, without accents or separators: how names are compared.
fn folded(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'é' | 'è' | 'ê' | 'É' | 'È' => Some('e'),
            'à' | 'À' => Some('a'),
            'ç' => Some('c'),
            c if c.is_ascii_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The status a platform names by its code (`212`), its id (`collected`) or its French
/// name (`Encaissée`, `encaissee`, `en litige`).
pub fn status(name: &str) -> Option<LifecycleStatus> {
    let f = folded(name.trim());
    STATUSES
        .iter()
        .find(|s| f == s.code.to_string() || f == folded(s.id) || f == folded(s.fr))
        .copied()
}

/// What a status does to dunning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Rejected or refused: not a valid claim; the invoice leaves the ladder.
    Cancel,
    /// In dispute: a dispute opens and dunning of the invoice pauses.
    Dispute,
    /// Suspended: dunning of the invoice pauses until lifted.
    Pause,
    /// Payment sent: dunning waits this many days for the money.
    Wait(i64),
    /// Collected: a payment of the invoice.
    Payment,
    /// Recorded only.
    None,
}

impl LifecycleStatus {
    pub fn effect(&self) -> Effect {
        match self.code {
            210 | 213 => Effect::Cancel,
            207 => Effect::Dispute,
            208 => Effect::Pause,
            211 => Effect::Wait(10),
            212 => Effect::Payment,
            _ => Effect::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_named_by_code_id_or_french_name() {
        assert_eq!(status("212").map(|s| s.id), Some("collected"));
        assert_eq!(status("Encaissée").map(|s| s.code), Some(212));
        assert_eq!(status("encaissee").map(|s| s.code), Some(212));
        assert_eq!(status("en litige").map(|s| s.code), Some(207));
        assert_eq!(status("REJECTED").map(|s| s.code), Some(213));
        assert_eq!(status("déposée").map(|s| s.effect()), Some(Effect::None));
        assert_eq!(status("refusée").map(|s| s.effect()), Some(Effect::Cancel));
        assert!(status("paid").is_none());
    }
}
