"""The life of an appeal after it is filed: status changes and the notifications they cause, residents
joining an open appeal instead of filing a duplicate, the resident's rating of the result, and the
first-response SLA. Transport-free: the forwarder (integrations/backend) and the dispatcher call in here,
and messages to residents leave through the outbox like everything else that must not be lost."""
