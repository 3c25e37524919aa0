# The planner's report (`fleet-server plan`) and its progress on stderr.

planner-coverage = Enterprises within { $radius } m of a locker: { $before } of { $enterprises } ({ $share_before }) now, { $after } ({ $share_after }) with { $sites } new site(s).
planner-sizing = Boxes sized for { $overflow } overflow at the peak ({ $peak }x the mean hour, { $dwell } h dwell, { $uses } uses per case).
planner-col-rank = rank
planner-col-candidate = candidate
planner-col-lat = lat
planner-col-lon = lon
planner-col-enterprises = enterprises
planner-col-cases = cases/month
planner-col-sizes = S/M/L
planner-col-boxes = boxes
planner-col-usage = usage
planner-col-overflow = overflow
planner-capped = (capped by max_boxes)
planner-none-asked = (no new sites asked for)
planner-none-reach = (no candidate reaches demand that is not already covered)
planner-no-cases = (boxes not sized: no demand point gives monthly_cases; add the column to size them)
planner-some-cases = ({ $without } of { $points } demand points give no monthly_cases: boxes are sized for the cases of the others)
planner-expansions = Sites in service that need more boxes:
planner-expansion = { $site } { $boxes } boxes -> { $needed } (+{ $add }): busiest hour { $peak } occupied, { $refused } refused a day
planner-clusters = Clusters (target: { $target } of each cluster's enterprises within walking distance):
planner-clusters-density = found by density: the points around each peak of enterprises within { $radius } m, { $min } points at least
planner-clusters-named = as the demand points name them
planner-clusters-both = { $named } as the demand points name them, { $dense } found by density (peaks of enterprises within { $radius } m) among the unnamed points
planner-cluster-row = { $enterprises } enterprises { $before } -> { $after }
planner-meets = meets target
planner-below = below target
planner-more-clusters = ... and { $count } smaller cluster(s) ({ $enterprises } enterprises)
planner-scattered = ... and { $count } scattered demand point(s) in no cluster ({ $enterprises } enterprises)

## Progress, on stderr.
planner-no-database = no fleet database at { $path } (give --data-dir or --database-url of the fleet to count its sites in service): planning as if no site were in service
planner-progress-reach = planning: { $points } demand points, { $candidates } candidate sites: measuring walking distances
planner-progress-greedy = first choice covers { $covered }; searching for better choices
planner-progress-search = { $percent }% searched: the best covers { $covered }
planner-done = planned in { $seconds } s
