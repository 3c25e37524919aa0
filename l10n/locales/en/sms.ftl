# The built-in SMS a citizen receives with their code (an administrator may write their own
# per site and language: PUT /api/v1/sms-templates). Every message must keep { $code }.

sms-dropoff = LockerFleet: drop-off code { $code } for case { $case }: { $site }, cabinet { $cabinet }, box { $box_no }. Valid until { $until }.
sms-supplement = LockerFleet: code { $code } to drop the supplementary material for case { $case }: { $site }, cabinet { $cabinet }, box { $box_no }. Deadline { $until }.
sms-pickup = LockerFleet: your document for case { $case } is ready at { $site }, cabinet { $cabinet }, box { $box_no }. Pick-up code { $code }, valid until { $until }.
sms-reminder = LockerFleet: your document for case { $case } waits at { $site }, cabinet { $cabinet } box { $box_no } until { $until }. Use the code you received.
