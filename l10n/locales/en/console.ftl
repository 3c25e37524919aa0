# The operator console (fleet-console).

## Navigation: all eight fit in 80 columns with their numbers.
console-screen-overview = Overview
console-screen-site = Site
console-screen-alarms = Alarms
console-screen-work = Work
console-screen-audit = Audit
console-screen-usage = Usage
console-screen-planning = Plan
console-screen-fleet = Fleet

## The status line.
console-status-unreachable = server unreachable: { $error } (retrying)
console-status-reconnected = reconnected
console-status-open-accepted = remote open of { $device } box { $box_no } { $status }
console-status-open-refused = remote open refused: { $error }
console-status-open-done = { $device } box { $box_no }: { $status }
console-status-open-done-in = { $device } box { $box_no }: { $status } in { $ms } ms
console-status-acked = alarm { $alarm } acknowledged
console-status-ack-refused = acknowledge refused: { $error }
console-status-deployed = deployment { $deployment } changed
console-status-diagnosis = { $device } { $kind ->
    [doctor] doctor report
   *[logs] log lines
}: { $summary }
console-status-refreshing = refreshing
console-status-no-deployment = no deployment selected
console-status-deploy-needs-admin = pausing, resuming and cancelling deployments needs the admin role
console-status-deployment-final = deployment { $deployment } is { $state }: nothing to change
console-status-no-site = no site selected
console-status-no-site-of = { $device } belongs to no site
console-status-select-box = select a box first: Enter on a site, Tab to its boxes
console-status-open-needs-operator = remote open needs the operator role; this token is { $role }: ask an operator
console-status-select-cabinet = select a cabinet (Site screen) or an alarm first, then d or g
console-status-ack-not-active = alarm { $alarm } is { $state }; only active ones are acknowledged
console-status-ack-needs-operator = acknowledging needs the operator role
console-status-reason-required = a reason is required: it goes into the audit log
console-status-opening = opening { $device } box { $box_no }
console-status-note-required = a note is required: say what you are doing about it
console-status-cancel-note-required = a note is required to cancel: say why
console-status-deploying = { $act ->
    [pause] pausing
    [resume] resuming
   *[cancel] cancelling
} deployment { $deployment }…

## The help overlay.
console-help-screens = Overview, Site, Alarms, Work lists, Audit, Usage, Planning, Fleet
console-help-tab = next pane (site: cabinets/boxes) or next screen
console-help-move = move; PgUp/PgDn by ten
console-help-sideways = move in the box grid; switch work list
console-help-enter = open the site / go to the boxes / jump to the alarm's box
console-help-esc = back, clear the filter, close a dialog
console-help-filter = filter the list on screen (type, Enter keeps, Esc clears)
console-help-open = remote open of the selected box (operator; reason required)
console-help-ack = acknowledge the selected alarm (operator; note required)
console-help-diagnose = doctor report / newest log lines of the cabinet (operators ask anew)
console-help-deploy = Fleet: pause or resume / cancel the selected deployment (admin)
console-help-refresh = refresh now (Usage: the figures; Planning: the plan)
console-help-help = this help (any key closes)
console-help-quit = quit
console-help-letters-key = letters
console-help-letters = box states: F free, R reserved, O occupied, X out of service
console-help-flags-key = flags
console-help-flags = ! open alarm, D door open, L overdue
console-help-header-key = header
console-help-header = ● live, ○ connecting, ✕ down; data age since the last answer
console-help-colours-key = colours
console-help-colours = only repeat the letters: nothing needs colour to be read

## Frame: header, status line, dialogs.
console-too-small = Terminal too small
console-too-small-size = { $width }×{ $height }; the console needs { $need_width }×{ $need_height }.
console-too-small-hint = Enlarge the window, or q to quit.
console-link-live = live
console-link-connecting = connecting
console-link-down = down
console-data-age = data { $age } old
console-no-data = no data yet
console-filter-typing = /{ $filter }▏ (Enter keeps, Esc clears)
console-filter-kept = filter: { $filter } (Esc clears) · { $status }
console-hint = ? help · q quit
console-help-title = { " " }Keys{ " " }
console-open-title = { " " }Remote open: { $device } box { $box_no }{ " " }
console-open-question = The door unlocks at once. Why? (goes into the audit log)
console-open-field = Reason
console-open-keys = Enter open · Esc cancel
console-ack-title = { " " }Acknowledge alarm { $alarm }{ " " }
console-ack-question = It stays open until its condition ends. What are you doing about it?
console-note-field = Note
console-ack-keys = Enter acknowledge · Esc cancel
console-deploy-title = { " " }{ $act ->
    [pause] Pause
    [resume] Resume
   *[cancel] Cancel
} deployment { $deployment }{ " " }
console-deploy-cancel-question = Nothing more is offered; cabinets keep what they run. Why?
console-deploy-pause-question = No more offers until resumed. Why? (optional)
console-deploy-resume-question = Offers go on (a manual deployment starts its next wave). Why? (optional)
console-deploy-keys = Enter confirm · Esc cancel

## Ages and latencies.
console-age-s = { $n } s
console-age-min = { $n } min
console-age-h = { $n } h
console-age-d = { $n } d
console-latency = { " " }({ $ms } ms)

## Site screen: cabinets, the box grid, the selected box.
console-site-boxes-of = { " " }{ $cabinet } · boxes{ " " }
console-site-boxes = { " " }boxes{ " " }
console-site-no-boxes = no boxes (a station device, or not loaded yet)
console-box-title = { " " }box{ " " }
console-box-watch = open { $device } box { $box_no }:{ " " }
console-box-refused = { " " }refused: { $error }
console-box-head = box { $box_no } · size { $size } · { $state }
console-box-accessible = { " " }· accessible
console-box-door-open = { " " }· door OPEN
console-box-door-shut = { " " }· door shut
console-box-hint-viewer = remote open: not for this token's role (operators only)
console-box-hint-open = o: remote open (reason required)
console-box-item = item { $item } { $flow } · case { $case } · { $state } · { $age } ago
console-box-audit = { $age } ago { $action } by { $actor }
console-box-none = Tab to the boxes, arrows to pick one, o to open it

## Column headers (short: each fits its column).
console-col-site = Site
console-col-kind = Kind
console-col-online = Online
console-col-free = Free
console-col-occupied = Occ
console-col-reserved = Res
console-col-out-of-service = OOS
console-col-faulty = Flt
console-col-today = Today
console-col-uses = Uses/h { $hours } h
console-col-alarms = Alm
console-col-severity = Severity
console-col-device = Device
console-col-box = Box
console-col-state = State
console-col-count = Count
console-col-age = Age
console-col-flow = Flow
console-col-case = Case number
console-col-due = Due
console-col-who = Who
console-col-what = What
console-col-where = Where
console-col-why = Why
console-col-outcome = Outcome
console-col-hours = Hours
console-col-week = 7 days
console-col-avg = Avg
console-col-above = ≥rate
console-in = in { $age }
console-ago = { $age } ago

## Overview, Alarms, Work, Audit, Usage.
console-overview-title = { " " }Sites · Enter: cabinets and boxes{ " " }
console-overview-empty = No sites yet: configure them with the API (POST /api/v1/sites).
console-alarms-title = { " " }Open alarms · a: acknowledge · Enter: go to the box · /: filter{ " " }
console-alarms-empty = No open alarms.
console-alarm-acked-by = { " " }· acknowledged by { $by }: { $note }
console-alarm-escalated = { " " }· ESCALATED
console-alarm-no-site = no site
console-work-tab = { $tab ->
    [collect] to collect
    [deposit] to deposit
   *[overdue] overdue
}
console-work-late = LATE
console-work-title = { " " }← → switch list{ " " }
console-audit-title = { " " }Who opened what, when, why, and the outcome{ " " }
console-usage-loading = { " " }loading usage figures…
console-usage-saturated = SATURATED
console-usage-title = { " " }Occupancy per hour, last { $hours } h (·░▒▓█: <5/35/60/80%+) · 7 days · saturated: ≥{ $rate } on { $days } of { $window } days{ " " }

## Remote diagnostics overlay.
console-diag-asking = asking { $device } for { $kind ->
    [doctor] a doctor report
   *[logs] its newest log lines
}…
console-diag-how = the answer comes over the cabinet's own connection
console-diag-head = { $state ->
    [pending] pending
    [answered] answered
    [expired] expired
   *[other] { $state }
} · asked by { $by } { $age } ago
console-diag-offline = no answer yet: the cabinet seems to be offline;
console-diag-offline-until = it gets the request when it is back (for { $age } more)
console-diag-level = logging at { $level }
console-diag-dropped = { " " }· { $dropped } older lines gone from the ring
console-diag-refused = the cabinet would not answer: { $reason }
console-diag-title = { " " }{ $device } · { $kind ->
    [doctor] doctor
   *[logs] logs
}{ " " }
console-diag-keys = { " " }↑↓ PgUp PgDn scroll · r ask again · Esc close{ " " }

## Fleet screen: deployments and configuration drift.
console-fleet-loading = loading deployments and configuration…
console-fleet-error = cannot show the fleet: { $error }
console-fleet-list = { " " }deployments{ " " }
console-fleet-none = no deployments yet (POST /api/v1/deployments)
console-fleet-deployment = { " " }deployment{ " " }
console-fleet-head = { " " }· wave { $wave }/{ $waves } · { $by }, { $age } ago
console-fleet-pass = pass { $percent }%
console-fleet-halt = halt above { $percent }% failed
console-fleet-soak = soak { $age }
console-fleet-window = window { $from }–{ $to }
console-fleet-manual = manual waves
console-fleet-wave = wave { $wave } { $bar } { $ok }/{ $devices } ok
console-fleet-going = , { $n } going
console-fleet-waiting = , { $n } waiting
console-fleet-failed = , { $failed } failed, { $back } back
console-fleet-failures = { $n ->
    [one] { $n } device failed or went back:
   *[other] { $n } devices failed or went back:
}
console-fleet-no-reason = no reason given
console-fleet-hint-viewer = pause, resume and cancel: admin only
console-fleet-hint = p pause/resume · x cancel · ↑↓ another deployment
console-fleet-rollback = { " " }(rollback)
console-drift-title = { " " }configuration drift: { $n } devices{ " " }
console-drift-none = every device runs its desired configuration
console-drift-runs = runs { $version }
console-drift-state = { $state ->
    [waiting_restart] waits to restart with
    [refused] refused
   *[other] { $state }
}
console-drift-unreported = has not reported
console-drift-wants = wants { $version }

## Planning screen.
console-plan-computing = { " " }computing the plan…
console-plan-none = { " " }No plan: { $error }
console-plan-title-short = { " " }Planning{ " " }
console-plan-title = { " " }Where the next clusters go{ " " }
console-plan-coverage = { " " }Enterprises within { $radius } m of a locker: { $before } of { $enterprises } ({ $share_before }) now → { $after } ({ $share_after }) with { $sites ->
    [one] { $sites } new site.
   *[other] { $sites } new sites.
}
console-plan-overflow = { " " }Boxes sized for { $overflow } overflow at the busiest hour (Erlang loss).
console-plan-expansions = { " " }Sites in service that need more boxes:
console-plan-expansion = { "   " }{ $site }: { $boxes } boxes → { $needed } (+{ $add })
console-plan-yes = yes
console-plan-no = NO
console-plan-clusters = { " " }Coverage per cluster (goal: { $target } of its enterprises within walking distance){ " " }
console-col-rank = Rank
console-col-enterprises = Enterprises
console-col-cases = Cases/mo
console-col-boxes = Boxes
console-col-usage = Usage
console-col-overflow = Overflow
console-col-cluster = Cluster
console-col-before = Before
console-col-after = After

## What the data task reports (the server's own message follows in brackets).
console-api-error = { $code ->
    [invalid_request] bad request
    [invalid_body] bad request body
    [invalid_field] a field is not valid
    [unauthorized] the token is not accepted
    [forbidden] not allowed for this token's role
    [not_found] not found
    [unknown_device] no such device
    [unknown_box] no such box
    [conflict] conflicts with the current state
    [no_free_box] no free box
    [too_large] too large
    [rate_limited] too many requests: wait a moment
    [unavailable] the server cannot do this now
    [internal] server error
   *[other] error
}
console-api-unexpected = unexpected answer: { $error }
console-net-cannot-connect = cannot connect (is the server running?)
console-net-timeout = timed out
console-check-token = (check --token)
console-diag-no-answer = no { $kind ->
    [doctor] doctor report
   *[logs] log lines
} from this cabinet yet: an operator can ask for one
console-open-no-command = the server accepted the open but returned no command id
console-stream-refused = from the change stream
console-stream-silent = no keep-alive from the server for 30 s
console-stream-closed = the server closed the change stream

## The planning map.
console-help-map = Planning: map on/off; zoom in/out, pan, fit every point
console-map-list = { " " }recommended sites{ " " }
console-map-title = { " " }Map · walking radius { $radius } m · zoom ×{ $zoom }{ " " }
console-map-keys = { " " }· demand ◉ large ■ site use% ◆ recommended ○ walking radius ✓/✕ cluster goal · m list · +- zoom · HJKL pan · 0 fit{ " " }
console-map-empty = { " " }nothing to draw yet: no demand points, sites or recommendations

## The operator's trail this session (t).
console-help-trail = what I did this session (remote opens, acknowledgements) and how it went
console-trail-title = { " " }My actions this session, newest first{ " " }
console-trail-keys = { " " }any key closes · the audit log keeps everyone's{ " " }
console-trail-empty = nothing yet: remote opens, acknowledgements and deployment changes appear here with their outcome
console-trail-open = remote open { $device } box { $box_no }
console-trail-ack = acknowledge alarm { $alarm }
console-trail-deploy = { $act ->
    [pause] pause
    [resume] resume
   *[cancel] cancel
} deployment { $deployment }
console-trail-done = { $status ->
    [acknowledged] acknowledged
    [changed] done
    [opened] opened
    [already_open] already open
    [jammed] jammed
    [failed] failed
    [expired] expired
   *[other] { $status }
}
console-trail-failed = refused: { $error }

## Faults only (Ctrl-Z).
console-help-faults = faults only: sites with alarms, faults or devices offline; active alarms; overdue items; saturated sites
console-status-faults-only = faults only (Ctrl-Z shows everything)
console-status-everything = everything shown
console-faults-badge = [faults only]

## The command line (:).
console-help-command = command line: site, cabinet, case, alarm ID, open CABINET BOX, a screen; Tab completes, ↑↓ history
console-help-more = { " " }↑↓ more keys · any other key closes{ " " }
console-cmd-no-match = (no match)
console-cmd-unknown = unknown command :{ $command }: try :site, :cabinet, :case, :alarm, :open, :overview, :alarms, :work, :audit, :usage, :plan, :fleet, :help, :quit
console-cmd-usage = usage: { $usage }
console-cmd-no-site = no site matches { $site }
console-cmd-finding = looking up { $what }…
console-cmd-no-alarm = no alarm on screen starts with { $alarm } (Ctrl-Z shows everything)
console-cmd-no-case = no item with case number { $case }

## fleet-console --print-keys: one line per command.
console-key-screen = screen { $n ->
    [1] 1, Overview
    [2] 2, Site
    [3] 3, Alarms
    [4] 4, Work lists
    [5] 5, Audit
    [6] 6, Usage
    [7] 7, Planning
   *[other] 8, Fleet
}
console-key-up = move up
console-key-down = move down
console-key-left = move left in the box grid; previous work list
console-key-right = move right in the box grid; next work list
console-key-page = move by ten
console-key-doctor = the cabinet's doctor report (operators ask anew)
console-key-logs = the cabinet's newest log lines (operators ask anew)
console-key-pause = Fleet: pause or resume the selected deployment (admin)
console-key-cancel = Fleet: cancel the selected deployment (admin; note required)
console-key-map = Planning: the map on or off
console-key-zoom = Planning map: zoom in / out
console-key-pan = Planning map: pan
console-key-fit = Planning map: every point in view
console-col-time = Time
