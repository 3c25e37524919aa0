# The built-in SMS a citizen receives with their code (an administrator may write their own
# per site and language: PUT /api/v1/sms-templates). Every message must keep { $code }.

sms-dropoff = LockerFleet: drop-off code { $code } for case { $case }: { $site }, cabinet { $cabinet }, box { $box_no }. Valid until { $until }.
sms-supplement = LockerFleet: code { $code } to drop the supplementary material for case { $case }: { $site }, cabinet { $cabinet }, box { $box_no }. Deadline { $until }.
sms-pickup = LockerFleet: your document for case { $case } is ready at { $site }, cabinet { $cabinet }, box { $box_no }. Pick-up code { $code }, valid until { $until }.
sms-reminder = LockerFleet: your document for case { $case } waits at { $site }, cabinet { $cabinet } box { $box_no } until { $until }. Use the code you received.

# What on-duty staff read of an alarm ($box_no is "none" for the device itself).
sms-alarm = { $escalated ->
    [yes] ESCALATED, nobody acknowledged:{ " " }
   *[no] {""}
}LockerFleet { $severity } alarm: { $kind } at { $device }{ $box_no ->
    [none] {""}
   *[other] { " " }box { $box_no }
} ({ $site }): { $evidence }{ $cleared ->
    [yes] { " " }(cleared since)
   *[no] {""}
}. Alarm { $id }
