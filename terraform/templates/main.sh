
################################################################################
# Entry points, the same for every role (each role defines setup, configure, health,
# SERVICES and LOCK_FILE above)
#   boot                    first boot (cloud-init): setup, then the current release
#   deploy COMMIT SHA256    in place: stop taking work, install, configure, restart,
#                           health-check; on failure back to the previous release
#   configure               configs and secrets again (e.g. after a rotation), restart
################################################################################

deploy() {
  local release=$1 sha=$2 previous
  previous=$(current_release)
  log "deploying $release (running: ${previous:-nothing})"
  systemctl stop "${SERVICES[@]}" 2>/dev/null || true
  if install_release "$release" "$sha" && configure && health; then
    log "release $release is healthy"
    find "$RELEASES" -mindepth 1 -maxdepth 1 -type d ! -name "$release" ! -name "$previous" \
      -mmin +60 -exec rm -rf {} + # keep the current and the previous release
    return 0
  fi
  log "release $release failed: rolling back to ${previous:-nothing}"
  if [[ -n $previous && $previous != "$release" ]]; then
    switch_release "$previous"
    if ! { configure && health; }; then log "the previous release $previous is unhealthy too"; fi
  fi
  return 1
}

main() {
  local release
  case ${1:-boot} in
  boot)
    install -m 0700 "$0" /usr/local/sbin/pneumonia-host
    setup
    release=$(get_parameter "$RELEASE_PARAMETER")
    if [[ $release == none ]]; then
      log "no release yet: make release && make deploy RELEASE=<commit> installs one"
    else
      deploy "$release" "$(aws s3 cp --only-show-errors "$RELEASE_STORE/$release.tar.gz.sha256" - | cut -d' ' -f1)"
    fi
    ;;
  deploy) deploy "$2" "$3" ;;
  configure) configure && health ;;
  *)
    echo "usage: $0 [boot | deploy COMMIT SHA256 | configure]" >&2
    return 2
    ;;
  esac
}

main "$@"
