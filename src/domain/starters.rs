//! The templates every new tenant starts with (editable like any other): plain
//! values, written to a new tenant's store and checked to compile by `render`.

pub struct Starter {
    pub name: &'static str,
    pub subject: &'static str,
    pub html: &'static str,
}

/// The name of the starter template the starter follow-up automation sends.
pub const FOLLOW_UP: &str = "Follow-up";

/// The name of the starter template a double opt-in sends when its form
/// names none: it links `confirm_url`.
pub const CONFIRM_SUBSCRIPTION: &str = "Confirm your subscription";

pub const STARTERS: [Starter; 6] = [
    Starter {
        name: "Ticket confirmation",
        subject: "We received your request{% if ticket_id %} (#{{ ticket_id }}){% endif %}",
        html: include_str!("starters/ticket_confirmation.html"),
    },
    Starter {
        name: "Shipping notification",
        subject: "Your order{% if order_id %} {{ order_id }}{% endif %} has shipped",
        html: include_str!("starters/shipping_notification.html"),
    },
    Starter {
        name: "Password reset",
        subject: "Reset your {{ tenant.name }} password",
        html: include_str!("starters/password_reset.html"),
    },
    Starter {
        name: "Invitation",
        subject: "{{ inviter_name | default(\"A teammate\") }} invited you to {{ tenant.name }}",
        html: include_str!("starters/invitation.html"),
    },
    Starter {
        name: FOLLOW_UP,
        subject: "A question about {{ tenant.name }}?",
        html: include_str!("starters/follow_up.html"),
    },
    Starter {
        name: CONFIRM_SUBSCRIPTION,
        subject: "Confirm your subscription to {{ tenant.name }}",
        html: include_str!("starters/confirm_subscription.html"),
    },
];
