# The domain's vocabulary: states, kinds and flows as people read them, wherever they are
# shown (console, notifications). Selected by the wire value; an unknown one shows as is.

domain-site-kind = { $kind ->
    [service_hall] hall
    [enterprise_cluster] cluster
    [station] station
    [community] community
   *[other] { $kind }
}
domain-box-state = { $state ->
    [free] free
    [reserved] reserved
    [occupied] occupied
    [out_of_service] out of service
   *[other] { $state }
}
domain-severity = { $severity ->
    [critical] critical
    [major] major
    [minor] minor
    [warning] warning
   *[other] { $severity }
}
domain-alarm-state = { $state ->
    [active] active
    [acknowledged] acked
    [cleared] cleared
    [suppressed] suppr.
   *[other] { $state }
}
domain-alarm-kind = { $kind ->
    [door_left_open] door left open
    [forced_open] forced open
    [lock_jam] lock jammed
    [sensor_fault] sensor fault
    [lock_bus_unreachable] lock board silent
    [on_battery] on battery
    [tamper] tamper
    [keypad_locked] keypad locked
    [paper_low] paper low
    [paper_out] paper out
    [paper_jam] paper jam
    [toner_low] toner low
    [needs_service] needs service
    [device_offline] device offline
    [clock_skew] clock off
   *[other] { $kind }
}
domain-flow = { $flow ->
    [dropoff] drop-off
    [supplement] supplement
    [pickup] pick-up
   *[other] { $flow }
}
domain-item-state = { $state ->
    [reserved] reserved
    [awaiting_deposit] awaiting deposit
    [in_box] in box
    [collected] collected
    [picked_up] picked up
    [expired] expired
    [overdue] overdue
    [retrieved] retrieved
    [cancelled] cancelled
   *[other] { $state }
}
domain-command-status = { $status ->
    [queued] queued
    [sent] sent
    [delivered] delivered
    [opened] opened
    [already_open] already open
    [jammed] jammed
    [failed] failed
    [expired] expired
   *[other] { $status }
}
domain-deployment-state = { $state ->
    [running] running
    [paused] paused
    [halted] halted
    [completed] completed
    [cancelled] cancelled
   *[other] { $state }
}
domain-rollout-state = { $state ->
    [pending] pending
    [offered] offered
    [downloading] downloading
    [downloaded] downloaded
    [waiting] waiting
    [installing] installing
    [confirming] confirming
    [succeeded] succeeded
    [failed] failed
    [rolled_back] rolled back
    [rolling_back] rolling back
   *[other] { $state }
}
domain-role = { $role ->
    [viewer] viewer
    [platform] platform
    [operator] operator
    [admin] admin
   *[other] { $role }
}
