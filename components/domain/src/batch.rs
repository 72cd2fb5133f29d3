//! Answering a batch: one answer per item, in the items' order, where some items are answered
//! on their own at once (they did not parse) and the others together, by one call for all of them
//! (one read and one write of the store for a whole batch).

/// Answers every item of `items`: `prepare` either readies an item for the batch call (`Ok`) or
/// answers it at once (`Err`); `answer_together` answers every readied item, in the order they
/// were readied, with exactly one answer each.
///
/// # Panics
/// When `answer_together` answers a different number of items than it was given.
pub fn answer_each<Item, Ready, Answer>(
    items: impl IntoIterator<Item = Item>,
    prepare: impl FnMut(Item) -> Result<Ready, Answer>,
    answer_together: impl FnOnce(Vec<Ready>) -> Vec<Answer>,
) -> Vec<Answer> {
    let prepared: Vec<Result<Ready, Answer>> = items.into_iter().map(prepare).collect();
    let mut positions = Vec::new();
    let mut ready = Vec::new();
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(prepared.len());
    for (position, item) in prepared.into_iter().enumerate() {
        match item {
            Ok(item) => {
                positions.push(position);
                ready.push(item);
                answers.push(None);
            }
            Err(answer) => answers.push(Some(answer)),
        }
    }
    let together = answer_together(ready);
    assert_eq!(
        together.len(),
        positions.len(),
        "one answer per item of the batch call"
    );
    for (position, answer) in positions.into_iter().zip(together) {
        answers[position] = Some(answer);
    }
    answers
        .into_iter()
        .map(|answer| answer.expect("every position is answered at once or by the batch call"))
        .collect()
}

/// [`answer_each`], where the batch call `outcomes` gives one outcome per readied item, and
/// `answer` words each outcome with the item it is for.
pub fn answer_each_by_outcome<Item, Ready, Outcome, Answer>(
    items: impl IntoIterator<Item = Item>,
    prepare: impl FnMut(Item) -> Result<Ready, Answer>,
    outcomes: impl FnOnce(&[Ready]) -> Vec<Outcome>,
    mut answer: impl FnMut(Outcome, &Ready) -> Answer,
) -> Vec<Answer> {
    answer_each(items, prepare, |ready| {
        outcomes(&ready)
            .into_iter()
            .zip(&ready)
            .map(|(outcome, item)| answer(outcome, item))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::{answer_each, answer_each_by_outcome};

    #[test]
    fn items_answered_at_once_and_together_come_back_in_the_items_order() {
        let answers = answer_each(
            ["1", "x", "2", "y", "3"],
            |item| {
                item.parse::<u32>()
                    .map_err(|_| format!("{item}: not a number"))
            },
            |numbers| numbers.iter().map(|n| format!("{}", n * 10)).collect(),
        );
        assert_eq!(
            answers,
            ["10", "x: not a number", "20", "y: not a number", "30"]
        );
    }

    #[test]
    fn a_batch_of_items_all_answered_at_once_makes_a_call_with_none() {
        let mut called_with = None;
        let answers = answer_each(
            ["x"],
            |item| Err::<(), _>(item.to_string()),
            |ready| {
                called_with = Some(ready.len());
                Vec::new()
            },
        );
        assert_eq!((answers, called_with), (vec!["x".to_string()], Some(0)));
    }

    #[test]
    fn each_outcome_of_the_batch_call_is_answered_with_its_own_item() {
        let answers = answer_each_by_outcome(
            ["1", "x", "2"],
            |item| item.parse::<u32>().map_err(|_| format!("{item}?")),
            |numbers| numbers.iter().map(|n| n * 10).collect(),
            |tenfold, number| format!("{number}: {tenfold}"),
        );
        assert_eq!(answers, ["1: 10", "x?", "2: 20"]);
    }

    #[test]
    #[should_panic(expected = "one answer per item")]
    fn a_batch_call_that_answers_too_few_is_a_bug() {
        answer_each([1, 2], Ok::<i32, i32>, |_| vec![1]);
    }
}
