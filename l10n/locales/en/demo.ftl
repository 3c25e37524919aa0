# `lockerfleet demo`: what the terminal shows before and beside the console.

demo-title = LockerFleet demo
demo-addresses = { "  " }devices (MQTT over mutual TLS): { $mqtt }
    { "  " }HTTP API:                       http://{ $http }
    { "  " }admin token:                    { $token }
    { "  " }try: curl -H "Authorization: Bearer $(cat { $token })" http://{ $http }/api/v1/devices
demo-history-writing = writing the last { $days } days
demo-history-start = history: writing the last { $days } days before the live day starts
demo-history-progress = day { $day } of { $days }: { $reserved } reservations, { $refused } refused
demo-history-up-to-date = history: up to date (the data dir has it already)
demo-history-done = history: { $days } days played, { $reserved } reservations ({ $refused } refused: no free box), { $codes } codes used, { $wrong } wrong codes, { $staff } staff opens
demo-status = devices { $online }/{ $devices } online ({ $stations } stations) | events { $events } stored, { $unreceipted } awaiting receipt | boxes { $boxes }: { $occupied } occupied, { $open } open | remote opens { $opens } ({ $opened } opened, { $other } other, { $errors } errors) p50 { $p50 } ms
demo-day = reservations { $reserved } ({ $refused } refused) | dropped { $dropped } collected { $collected } | deposited { $deposited } picked up { $picked_up } | wrong codes { $wrong } | remote help { $helped }
demo-alarms = alarms: { $open } open ({ $acked } acknowledged) [{ $kinds }], { $cleared } cleared
demo-stopping = stopping: people first, then agents, then the server (drain, flush)
demo-console-failed = console failed: { $error }
