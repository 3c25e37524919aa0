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
    [escalated] escalated
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
    [events_lost] events lost
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
domain-occupancy = { $state ->
    [occupied] occupied
   *[empty] empty
}
domain-profile = { $profile ->
    [locker] locker
    [kiosk] self-service kiosk
    [tax_machine] self-service tax machine
    [printer] printer
   *[other] { $profile }
}
# The evidence of faults and alarms, by protocol::evidence code; $a and $b are its values.
domain-evidence = { $code ->
    [occupancy_again] occupancy reads { $a } again
    [occupancy_changed] occupancy changed to { $a } while the door stayed shut and no lock was pulsed
    [door_opened_judged] door opened; occupancy judged afresh
    [forced_open] door opened with no unlock pulse in the preceding { $a } ms
    [door_closed] door closed
    [door_closed_at_start] door found closed at start
    [door_open_for] door open for { $a } s
    [jam_no_change] door sensor did not change within { $a } ms of the unlock pulse
    [pulse_opened] the next pulse opened the door
    [bus_silent] no answer in { $a } polls in a row ({ $b })
    [bus_back] the lock board answers again
    [mains_lost] mains lost; running on the battery
    [mains_back] mains power is back
    [tamper_open] the enclosure's tamper switch is open
    [tamper_closed] the tamper switch is closed again
    [station_clears] the { $a } reports { $b } no more
    [station_reports] the { $a } reports { $b }
    [keypad_locked] repeated wrong entries; locked until { $a } (agent clock)
    [keypad_unlocked] the lock ended
    [offline] offline for more than { $a } s ({ $b })
    [heartbeat_lost] session up but no heartbeat for { $a } s (agent hung or its link half-open)
    [back_online] back online: session up and heartbeats fresh
    [clock_off] the cabinet's clock is { $a } { $b ->
        [behind] behind
       *[ahead] ahead of
    } the server's; it judges codes and commands on the server's time, but fix its clock (NTP)
    [clock_agrees] the cabinet's clock agrees with the server's again
    [events_lost_restore] { $a } events of { $b } cabinets were lost with the restore: the cabinets deleted them after the server's receipt, and the backup was older
    [events_lost] { $a } events of { $b } cabinets were lost: the server had receipted them and its database no longer holds them
   *[other] { $a } { $b }
}
